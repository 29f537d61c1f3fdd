"""Celery tasks. Each is idempotent: it reloads state by id and checks what it would create."""
