"""Ratings both ways, with a real worker aggregating: the rules at the API, the summary
recomputed by `ratings.aggregate`, concurrent ratings adding up, and the low-rating alert."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from domain.access import Actor, Caller
from domain.ratings import RatedSide, summarize
from domain.usecases import ratings as use
from infra.db import get_engine, session_scope, utcnow
from infra.unit_of_work import make_context, sql_unit_of_work
from infra.views import SqlViews
from tests.factories import Account, advance, register, request_ride
from tests.wait import until


def _completed(client: TestClient, p: Account, d: Account) -> str:
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    return str(ride["id"])


def _rate(client: TestClient, who: Account, ride_id: str, stars: int, **extra: Any) -> Any:
    return client.post(
        "/api/v1/ratings", json={"ride_id": ride_id, "stars": stars, **extra}, headers=who.headers
    )


def _summary(client: TestClient, user: Account) -> dict[str, Any]:
    r = client.get(f"/api/v1/users/{user.id}/rating", headers=user.headers)
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


def test_both_sides_rate_once_and_the_summaries_follow(client: TestClient) -> None:
    p, d = register(client, "passenger"), register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    early = _rate(client, p, ride["id"], 5)
    assert (early.status_code, early.json()["code"]) == (409, "ride_not_completed")
    advance(client, ride["id"], d, "arrive", "start", "complete")
    assert _summary(client, d) == {
        "shown": 4.5,  # the prior: nobody rated them yet
        "mean": None,
        "average": 4.5,
        "count": 0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
        "smoothed": True,
    }
    r = _rate(client, p, ride["id"], 5, comment=" great\x00 ride\u200b ", tags=["friendly"])
    assert r.status_code == 201, r.text
    assert r.json()["comment"] == "great ride"
    assert r.json()["tags"] == ["friendly"]
    again = _rate(client, p, ride["id"], 4)
    assert (again.status_code, again.json()["code"]) == (409, "already_rated")
    # the driver rates the passenger: a low rating says what went wrong, with their tags
    assert _rate(client, d, ride["id"], 2).json()["code"] == "tag_needed"
    assert _rate(client, d, ride["id"], 2, tags=["clean_car"]).json()["code"] == "invalid_tag"
    assert _rate(client, d, ride["id"], 2, tags=["late"]).status_code == 201
    # not a participant, or an admin: no
    stranger = register(client, "passenger")
    assert _rate(client, stranger, ride["id"], 5).status_code == 404
    assert _rate(client, p, str(uuid.uuid4()), 5).status_code == 404
    # the worker adds them up: a newcomer's average is smoothed
    until(lambda: _summary(client, d)["count"] == 1)
    first = _summary(client, d)
    assert first["shown"] == first["average"] == round((5 + 4.5 * 5) / 6, 2)
    assert first["mean"] == 5  # the plain mean, apart from the figure shown
    assert _summary(client, d)["distribution"]["5"] == 1
    until(lambda: _summary(client, p)["count"] == 1)
    assert _summary(client, p)["distribution"]["2"] == 1
    # what the rated person reads: never who rated them
    received = client.get(f"/api/v1/ratings/user/{d.id}", headers=d.headers).json()
    assert [i["stars"] for i in received["items"]] == [5]
    assert "rater_id" not in received["items"][0]
    tags = client.get("/api/v1/ratings/tags", headers=p.headers).json()
    assert "friendly" in tags["passenger"]
    assert "late" in tags["driver"]


def test_the_rating_window_closes_after_seven_days(client: TestClient) -> None:
    p, d = register(client, "passenger"), register(client, "driver")
    ride_id = _completed(client, p, d)
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET completed_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(days=7, minutes=1), "r": ride_id},
        )
    late = _rate(client, p, ride_id, 5)
    assert (late.status_code, late.json()["code"]) == (409, "rating_window_closed")


def test_concurrent_ratings_add_up_and_a_low_average_raises_an_alert(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    """Ratings and recomputations of one driver racing each other (threads, each its own
    transaction, while the worker runs the jobs too) end in the summary of all of them."""
    monkeypatch.setattr(settings, "fraud", replace(settings.fraud, rides_per_hour=100))
    p, d = register(client, "passenger"), register(client, "driver")
    rides = [_completed(client, p, d) for _ in range(12)]
    stars = [5, 4, 3, 2, 5, 1, 4, 3, 5, 2, 4, 3]
    rules = settings.rating
    start = threading.Barrier(len(rides))
    errors: list[BaseException] = []

    def one(ride_id: str, s: int) -> None:
        try:
            start.wait()
            with sql_unit_of_work() as uow:
                tags = ["late"] if s <= 3 else []
                use.rate(
                    uow,
                    make_context(),
                    Caller(uuid.UUID(p.id), Actor.PASSENGER),
                    uuid.UUID(ride_id),
                    s,
                    None,
                    tags,
                )
            with sql_unit_of_work() as uow:
                use.aggregate(uow, make_context(), uuid.UUID(d.id))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=pair) for pair in zip(rides, stars, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = summarize(stars, RatedSide.DRIVER, rules)  # the order does not matter
    until(lambda: _summary(client, d)["count"] == 12)
    got = _summary(client, d)
    assert got["average"] == expected.average == round(sum(stars) / 12, 2)
    assert got["smoothed"] is False
    assert got["shown"] == got["mean"] == got["average"]  # enough ratings: the plain mean
    assert got["distribution"] == {str(k): v for k, v in expected.distribution.items()}
    # 3.42 < 4.2 with 12 ratings: ops see the driver
    with session_scope() as session:
        from infra.users import create_user

        create_user(session, email="ops@example.com", password="x" * 10, name="Ops", role="admin")
    token = client.post(
        "/api/v1/auth/token", data={"username": "ops@example.com", "password": "x" * 10}
    ).json()["access_token"]
    alerts = client.get(
        "/api/v1/admin/ratings/alerts", headers={"Authorization": f"Bearer {token}"}
    ).json()["items"]
    assert [(a["user_id"], a["count"]) for a in alerts] == [(d.id, 12)]
    assert alerts[0]["average"] == expected.raw_average
    # recomputing again (a duplicate job) changes nothing, and opens no second alert
    with sql_unit_of_work() as uow:
        use.aggregate(uow, make_context(), uuid.UUID(d.id))
    assert _summary(client, d) == got
    with get_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rating_alerts")).scalar_one() == 1


def test_a_recomputation_waits_for_the_one_in_flight_and_sees_every_rating(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    """A recomputation (A) has read the driver's ratings and is paused before it writes;
    meanwhile a new rating is committed and recomputed (B). B must wait for A: without
    the user's row lock, B would finish first and A's late write (which never saw the new
    rating) would overwrite it."""
    import domain.usecases.ratings

    p, d = register(client, "passenger"), register(client, "driver")
    first, second = _completed(client, p, d), _completed(client, p, d)
    assert _rate(client, p, first, 5).status_code == 201
    until(lambda: _summary(client, d)["count"] == 1)
    driver = uuid.UUID(d.id)
    a_has_read, a_may_write, b_done = threading.Event(), threading.Event(), threading.Event()
    real_summarize = domain.usecases.ratings.summarize

    def paused_summarize(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "A":
            a_has_read.set()
            a_may_write.wait(10)
        return real_summarize(*args, **kwargs)

    monkeypatch.setattr(domain.usecases.ratings, "summarize", paused_summarize)

    def recompute_a() -> None:
        with sql_unit_of_work() as uow:
            use.aggregate(uow, make_context(), driver)

    def rate_and_recompute_b() -> None:
        with sql_unit_of_work() as uow:
            use.rate(
                uow,
                make_context(),
                Caller(uuid.UUID(p.id), Actor.PASSENGER),
                uuid.UUID(second),
                1,
                None,
                ["late"],
            )
        with sql_unit_of_work() as uow:
            use.aggregate(uow, make_context(), driver)
        b_done.set()

    a = threading.Thread(target=recompute_a, name="A")
    a.start()
    assert a_has_read.wait(10)
    b = threading.Thread(target=rate_and_recompute_b, name="B")
    b.start()
    assert not b_done.wait(0.5)  # B waits for A's lock
    a_may_write.set()
    a.join(10)
    b.join(10)
    assert b_done.is_set()
    with session_scope() as session:
        summary = SqlViews(session).rating_summary(driver)
        assert summary is not None
        assert (summary.count, summary.distribution["1"]) == (2, 1)
