from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(db: None) -> Iterator[TestClient]:
    from api.main import app

    with TestClient(app) as c:
        yield c
