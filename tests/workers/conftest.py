"""Worker tests: the API in-process, and a real Celery worker consuming the suite's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(db: None, celery_session_worker: Any) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as c:
        yield c
