"""A real Celery worker (Celery's own pytest plugin) consuming the suite's real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def celery_session_app() -> Any:
    from workers.app import app

    return app


@pytest.fixture(scope="session")
def celery_includes() -> list[str]:
    return ["celery.contrib.testing.tasks"]  # the ping the plugin starts with


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict[str, Any]:
    return {"queues": ("payments", "notifications", "default"), "shutdown_timeout": 30}


@pytest.fixture
def client(db: None, celery_session_worker: Any) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as c:
        yield c
