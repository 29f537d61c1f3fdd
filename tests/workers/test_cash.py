"""Cash rides: the fare is posted at completion, the cash a driver took is recorded as it
was, and the driver's earnings are derived from the ledger."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine
from tests.factories import advance, register, request_ride
from tests.wait import until


def _ledger_total() -> tuple[int, int]:
    with get_engine().connect() as conn:
        total, lines = conn.execute(
            text("SELECT coalesce(sum(amount), 0), count(*) FROM ledger_lines")
        ).one()
    return int(total), int(lines)


def test_cash_collected_and_earnings(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    early = client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": 100}, headers=d.headers
    )
    assert early.status_code == 404  # not the driver's ride yet
    advance(client, ride["id"], d, "accept", "arrive", "start")
    r = client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": 100}, headers=d.headers
    )
    assert r.status_code == 409  # not completed
    done = advance(client, ride["id"], d, "complete")
    fare = done["fare"]["amount"]
    short = fare - 50  # the rider was 50 short: recorded, not fixed
    r = client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": short}, headers=d.headers
    )
    assert r.status_code == 201
    assert r.json() == {
        "ride_id": ride["id"],
        "amount": short,
        "currency": "usd",
        "fare": fare,
        "difference": -50,
    }
    again = client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": short}, headers=d.headers
    )
    assert again.status_code == 200
    other = client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": fare}, headers=d.headers
    )
    assert other.status_code == 409
    assert other.json()["code"] == "cash_already_recorded"
    assert (
        client.post(
            f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": -1}, headers=d.headers
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/api/v1/rides/{ride['id']}/cash-collected", json={"amount": 10}, headers=p.headers
        ).status_code
        == 403
    )

    commission = (fare * settings.fare.commission_bp + 5_000) // 10_000
    # the fare entry comes from the worker; the cash entry was posted in the request
    until(lambda: _ledger_total()[1] == 5)
    assert _ledger_total()[0] == 0  # every entry balances
    body = client.get("/api/v1/drivers/me/earnings", headers=d.headers).json()
    assert body["balances"] == [
        {
            "currency": "usd",
            "earned": fare - commission,
            "cash_held": short,
            "net_payable": fare - commission - short,  # negative: the driver owes commission
        }
    ]
    kinds = sorted((i["kind"], i["account"], i["amount"]) for i in body["items"])
    assert kinds == [
        ("cash_collected", "cash_held", short),
        ("ride_fare", "earned", fare - commission),
    ]
    with get_engine().connect() as conn:
        owed = conn.execute(
            text("SELECT sum(amount) FROM ledger_lines WHERE account = :a"),
            {"a": f"rider_receivable:{p.id}"},
        ).scalar_one()
    assert owed == 50  # the rider still owes what they did not hand over


def test_the_day_is_settled_once_per_driver(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    from infra.queue import celery_app

    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    fare = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")["fare"]
    client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected",
        json={"amount": fare["amount"]},
        headers=d.headers,
    )
    until(lambda: _ledger_total()[1] == 5)
    # the ride's entries are moved to a fixed past day: the day they fall on must not
    # depend on when the suite runs (a ride at 23:59:59 UTC has entries on two days)
    today = "2026-03-10"
    with get_engine().begin() as conn:
        moved = conn.execute(
            text("UPDATE journal_entries SET created_at = :at WHERE ride_id = :ride"),
            {"at": "2026-03-10 12:00:00+00", "ride": ride["id"]},
        ).rowcount
    assert moved == 2  # the fare and the cash collected
    made = celery_app.send_task("payments.settle_day", kwargs={"period": today}).get(timeout=15)
    assert made == 1
    again = celery_app.send_task("payments.settle_day", kwargs={"period": today}).get(timeout=15)
    assert again == 0  # once per driver and period
    commission = (fare["amount"] * settings.fare.commission_bp + 5_000) // 10_000
    items = client.get("/api/v1/drivers/me/settlements", headers=d.headers).json()["items"]
    assert items == [
        {
            "id": items[0]["id"],
            "period": today,
            "currency": "usd",
            "earned": fare["amount"] - commission,
            "cash_held": fare["amount"],
            "net": -commission,  # a cash ride: the driver owes the commission
            "rides": 1,
            "created_at": items[0]["created_at"],
            "payout": {  # nothing to pay: what the driver owes goes into the next statement
                "status": "carried",
                "carried_in": 0,
                "amount": 0,
                "carried_out": -commission,
                "transfer_id": None,
                "paid_at": None,
                "error": None,
            },
        }
    ]
