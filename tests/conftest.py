"""Suite-wide setup: a throwaway PostgreSQL and Redis, started before any app import.

Settings are read once per process, so the environment is set in
`pytest_configure`, before test modules import the application.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import Services

_services = Services()
#: `RIDEHAIL_TEST_REDIS_CLUSTER=3 pytest -m live_state`: the tests of live state again,
#: against a cluster of 3 primaries with a replica each (and, for the tests that start
#: the whole stack, two API processes behind the proxy); `make test` runs both passes
CLUSTER_PRIMARIES = int(os.environ.get("RIDEHAIL_TEST_REDIS_CLUSTER", "0") or 0)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    data_dir = tempfile.mkdtemp(prefix="ridehail-test-")
    _services.start_postgres()
    _services.start_redis()
    _services.start_stripe()
    _services.start_fcm(trust=Path(data_dir))  # the offline FCM account is made there
    live_url = _services.redis_url
    if CLUSTER_PRIMARIES:  # live state on a local Redis Cluster; the Redis above: broker
        live_url = _services.start_redis_cluster(Path(data_dir) / "cluster", CLUSTER_PRIMARIES)
        os.environ["RIDEHAIL_REDIS_CLUSTER"] = "true"
    os.environ.update(
        RIDEHAIL_ENVIRONMENT="test",
        RIDEHAIL_DATABASE_URL=_services.database_url,
        RIDEHAIL_REDIS_URL=live_url,
        # the broker in its own Redis database, so tests can flush the app's without
        # dropping the queues' bindings
        RIDEHAIL_BROKER_URL=_services.redis_url.rsplit("/", 1)[0] + "/1",
        RIDEHAIL_DATA_DIR=data_dir,
        RIDEHAIL_JWT_SECRET="test-secret-0123456789abcdef0123456789abcdef",
        RIDEHAIL_LOGIN_ATTEMPTS_PER_MINUTE="1000",
        RIDEHAIL_STRIPE_API_BASE=_services.stripe_api_base,
        RIDEHAIL_FCM_ENDPOINT=_services.fcm_endpoint,
        RIDEHAIL_STRIPE_WEBHOOK_SECRET="whsec_suite_secret",
    )
    from infra.migrate import upgrade_head

    upgrade_head()


def pytest_unconfigure(config: pytest.Config) -> None:
    import gc
    import sys

    if "infra.queue" in sys.modules:
        gc.collect()  # AsyncResults unsubscribe on __del__: let them while Redis is up
        # stop the result consumer before its Redis goes away, or it retries into a crash
        backend = sys.modules["infra.queue"].celery_app.backend
        consumer = getattr(backend, "result_consumer", None)
        if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
            consumer.stop()
    _services.stop()


@pytest.fixture(scope="session")
def services() -> Services:
    return _services


def _truncate_all() -> None:
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from infra.db import get_engine, metadata

    names = ", ".join(t.name for t in metadata.sorted_tables)
    # a worker task of the test may still be finishing: a deadlock here is retried
    for attempt in range(10):
        try:
            with get_engine().begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        except OperationalError:
            if attempt == 9:
                raise
            time.sleep(0.3)


@pytest.fixture
def db() -> Iterator[None]:
    """A clean database and Redis for the test (everything the app wrote is removed)."""
    from infra.queue import celery_app
    from infra.redis import get_sync_redis

    yield
    # jobs the test left in the broker (no worker ran) must not reach the next test's worker
    celery_app.control.purge()
    _truncate_all()
    get_sync_redis().flushdb()


@pytest.fixture(scope="session")
def settings() -> Any:
    from infra.settings import get_settings

    return get_settings()


# --- a real Celery worker (Celery's own pytest plugin) against the suite's Redis ---------
@pytest.fixture(scope="session")
def celery_session_app() -> Any:
    from workers.app import app

    return app


@pytest.fixture(scope="session")
def celery_includes() -> list[str]:
    return ["celery.contrib.testing.tasks"]  # the ping the plugin starts with


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict[str, Any]:
    from infra.routing import PUSH_QUEUES

    return {
        "queues": ("payments", *PUSH_QUEUES, "default"),  # the push worker's order
        "shutdown_timeout": 30,
    }
