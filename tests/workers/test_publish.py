"""The live publish of a ride change: idempotent (a repeat emits nothing twice) and
order-safe (older facts never overwrite newer ones), so its follow-up job can repeat what
the API did after commit, late or twice, and change nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from infra.live.keys import ADMIN_STREAM, Keys
from infra.live.publisher import status_event
from infra.live.rides import LiveRides
from infra.redis import get_sync_redis

pytestmark = pytest.mark.live_state

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _ride(status: str, at: datetime, ride_id: uuid.UUID, driver: uuid.UUID) -> Any:
    return SimpleNamespace(
        id=ride_id,
        passenger_id=uuid.UUID(int=1),
        driver_id=driver,
        status=status,
        pickup_lat=52.52,
        pickup_lng=13.405,
        dropoff_lat=52.5,
        dropoff_lng=13.45,
        updated_at=at,
    )


def _statuses(stream: str, kind: str = "status") -> list[str]:
    entries = get_sync_redis().xrange(stream)
    return [json.loads(f["d"])["status"] for _id, f in entries if f["e"] == kind]


def test_a_repeated_or_late_publish_changes_nothing(db: None) -> None:
    live, r = LiveRides(get_sync_redis()), get_sync_redis()
    rid, driver = uuid.uuid4(), uuid.uuid4()
    accepted = _ride("accepted", T0, rid, driver)
    cancelled = _ride("cancelled", T0 + timedelta(seconds=1), rid, driver)
    assert live.ride_changed(accepted, status_event(rid, "accepted", T0)) is True
    assert r.hget(Keys.of(Keys.DRIVER_STATE, driver), "ride_id") == str(rid)
    assert live.ride_changed(cancelled, status_event(rid, "cancelled", T0)) is True
    assert r.hget(Keys.of(Keys.DRIVER_STATE, driver), "ride_id") is None  # the driver is free
    # the accept's job runs late, twice: no event again, no ghost assignment
    for _ in range(2):
        assert live.ride_changed(accepted, status_event(rid, "accepted", T0)) is False
    assert r.hget(Keys.of(Keys.RIDE_META, rid), "status") == "cancelled"
    assert r.hget(Keys.of(Keys.DRIVER_STATE, driver), "ride_id") is None
    assert _statuses(Keys.of(Keys.RIDE_EVENTS, rid)) == ["accepted", "cancelled"]
    assert _statuses(Keys.of(Keys.DRIVER_EVENTS, driver), "ride_status") == [
        "accepted",
        "cancelled",
    ]
    admin = [s for s in _statuses(ADMIN_STREAM) if s]
    assert admin == ["accepted", "cancelled"]


def test_the_publish_job_repeats_what_the_api_did(db: None, celery_session_worker: Any) -> None:
    """`rides.publish` through a real worker, after the in-process publish already ran."""
    from infra.db import session_scope, utcnow
    from infra.models import Ride, User
    from infra.queue import celery_app

    with session_scope() as session:
        user = User(
            email=f"{uuid.uuid4()}@example.com", name="P", role="passenger", password_hash="x"
        )
        session.add(user)
        session.flush()
        now = utcnow()
        ride = Ride(
            status="requested",
            passenger_id=user.id,
            pickup_lat=52.52,
            pickup_lng=13.405,
            dropoff_lat=52.5,
            dropoff_lng=13.45,
            payment="cash",
            currency="usd",
            estimate_amount=1000,
            estimate_distance_m=4000,
            estimate_duration_s=600,
            created_at=now,
            updated_at=now,
        )
        session.add(ride)
    event = status_event(ride.id, "requested", now)
    assert LiveRides(get_sync_redis()).ride_changed(ride, event) is True
    kwargs = {"ride_id": str(ride.id), "status": "requested", "at": now.isoformat()}
    first = celery_app.send_task("rides.publish", kwargs=kwargs).get(timeout=30)
    again = celery_app.send_task("rides.publish", kwargs=kwargs).get(timeout=30)
    assert (first, again) == ("already published", "already published")
    assert _statuses(Keys.of(Keys.RIDE_EVENTS, ride.id)) == ["requested"]


def _publish_rows(ride_id: str) -> list[tuple[str, bool]]:
    from sqlalchemy import text

    from infra.db import get_engine

    with get_engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT task_kwargs->>'status', completed_at IS NOT NULL FROM outbox "
                "WHERE task = 'rides.publish' AND task_kwargs->>'ride_id' = :r"
            ),
            {"r": ride_id},
        ).all()
    return [(status, done) for status, done in rows]


def test_the_api_publishes_itself_and_completes_the_outbox_row(db: None) -> None:
    from fastapi.testclient import TestClient

    from api.main import app
    from tests.factories import register, request_ride
    from tests.wait import until

    with TestClient(app) as client:
        ride = request_ride(client, register(client, "passenger"))
    assert _statuses(Keys.of(Keys.RIDE_EVENTS, ride["id"])) == ["requested"]  # before the answer
    # the row is completed a moment later, off the request's path
    until(lambda: _publish_rows(ride["id"]) == [("requested", True)], timeout=5)


def test_a_publish_lost_to_redis_is_repaired_by_the_outbox_sweep(
    db: None, celery_session_worker: Any, monkeypatch: Any
) -> None:
    from fastapi.testclient import TestClient

    import infra.jobs
    from api.main import app
    from tests.factories import register, request_ride
    from tests.wait import until

    def redis_down(*_args: Any, **_kwargs: Any) -> bool:
        raise ConnectionError("redis went away")

    # the API process dies before it could try again: the sweep is what is left
    monkeypatch.setattr(infra.jobs._RetrySoon, "delays_s", ())
    with TestClient(app) as client:
        p = register(client, "passenger")
        monkeypatch.setattr(LiveRides, "ride_changed", redis_down)
        ride = request_ride(client, p)  # the request still succeeds: the ride is committed
        monkeypatch.undo()
    assert _publish_rows(ride["id"]) == [("requested", False)]
    assert get_sync_redis().exists(Keys.of(Keys.RIDE_META, ride["id"])) == 0
    # the job beat runs (every 15 s, see celeryconfig), here with no waiting period
    import celeryconfig
    from infra.queue import celery_app
    from infra.settings import get_settings

    assert celeryconfig.beat_schedule["outbox-redispatch"]["task"] == "outbox.redispatch"
    monkeypatch.setattr(get_settings(), "outbox_redispatch_after_s", 0.0)
    sent = celery_app.send_task("outbox.redispatch").get(timeout=30)
    assert sent >= 1
    until(lambda: _publish_rows(ride["id"]) == [("requested", True)])
    assert _statuses(Keys.of(Keys.RIDE_EVENTS, ride["id"])) == ["requested"]
    assert get_sync_redis().hget(Keys.of(Keys.RIDE_META, ride["id"]), "status") == "requested"


def test_a_publish_lost_to_a_redis_blip_is_repeated_in_process_within_seconds(
    db: None, monkeypatch: Any
) -> None:
    """No worker and no sweep here: the API process itself tries again, so a passenger's
    app sees the ride a second after Redis is back, not a minute later."""
    from fastapi.testclient import TestClient

    from api.main import app
    from tests.factories import register, request_ride
    from tests.wait import until

    real = LiveRides.ride_changed
    failures = []

    def blip(self: LiveRides, *args: Any, **kwargs: Any) -> bool:
        if len(failures) < 2:  # the commit's own try and the first retry
            failures.append(1)
            raise ConnectionError("redis restarting")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LiveRides, "ride_changed", blip)
    with TestClient(app) as client:
        ride = request_ride(client, register(client, "passenger"))
        until(lambda: get_sync_redis().exists(Keys.of(Keys.RIDE_META, ride["id"])) == 1, timeout=5)
    assert len(failures) == 2
    assert _statuses(Keys.of(Keys.RIDE_EVENTS, ride["id"])) == ["requested"]
    until(lambda: _publish_rows(ride["id"]) == [("requested", True)], timeout=5)
