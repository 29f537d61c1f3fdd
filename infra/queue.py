"""The Celery application object: the API sends by task name, workers register tasks on it."""

from __future__ import annotations

from celery import Celery

celery_app = Celery("ridehail")
celery_app.config_from_object("celeryconfig")
