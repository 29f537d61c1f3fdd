"""Statements and payouts made by a real `celery beat` and worker, checked against the
ledger and the Stripe stand-in's transfers to the cent; a second run changes nothing.

Three drivers: A with a payout account, B without one until later, C who owed commission
on a cash ride the day before. Card funds at the stand-in are pending (as in test mode),
so the first transfers are refused with `balance_insufficient` and stay payable; funds
arrive, B onboards, and the next runs pay everything once. One transfer meets Stripe's
409 (its key still in flight) and is retried, not given up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from devtools import launcher
from infra.db import get_engine, utcnow
from infra.metrics import TASKS
from infra.stripe_gateway import stripe_client
from tests.factories import (
    Account,
    advance,
    card_passenger,
    card_ride,
    held,
    register,
    request_ride,
)
from tests.wait import until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def beat(tmp_path: Path) -> Iterator[None]:
    """A real beat with the settlement and payout jobs every second (the suite's worker
    runs what it sends)."""
    env = {
        **os.environ,
        "RIDEHAIL_SETTLEMENT_INTERVAL_S": "1",
        "RIDEHAIL_PAYOUT_INTERVAL_S": "1",
        "RIDEHAIL_PAYOUT_RETRY_S": "1",
    }
    proc = launcher.start_beat(env=env, log=tmp_path / "beat.log")
    try:
        yield
    finally:
        launcher.stop(proc)


def _runs(task: str) -> float:
    """Runs of `task` the suite's worker finished (it runs in this process)."""
    return TASKS.labels(task, "success")._value.get()


def _rows(sql: str, **params: Any) -> list[Any]:
    with get_engine().connect() as conn:
        return list(conn.execute(text(sql), params).mappings().all())


def _backdate(ride_id: str, days: int) -> None:
    """The ride's ledger entries as if posted `days` ago (statements close past days)."""
    at = utcnow() - timedelta(days=days)
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE journal_entries SET created_at = :at WHERE ride_id = :r"),
            {"at": at, "r": ride_id},
        )


def _entries(ride_id: str) -> int:
    return len(_rows("SELECT id FROM journal_entries WHERE ride_id = :r", r=ride_id))


def _card_trip(client: TestClient, driver: Account) -> str:
    p = card_passenger(client)
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], driver, "accept", "arrive", "start", "complete")
    # fare, then the card received: both posted
    until(lambda: _entries(ride["id"]) >= 2, timeout=30)
    return str(ride["id"])


def _cash_trip(client: TestClient, driver: Account) -> str:
    p = register(client, "passenger")
    ride = request_ride(client, p)
    fare = advance(client, ride["id"], driver, "accept", "arrive", "start", "complete")["fare"]
    client.post(
        f"/api/v1/rides/{ride['id']}/cash-collected",
        json={"amount": fare["amount"]},
        headers=driver.headers,
    )
    until(lambda: _entries(ride["id"]) >= 2, timeout=30)
    return str(ride["id"])


def _onboard(client: TestClient, driver: Account) -> None:
    link = client.post("/api/v1/drivers/me/payout-account", headers=driver.headers)
    assert link.status_code == 200, link.text
    opened = httpx.get(link.json()["url"], follow_redirects=False, timeout=10)
    assert opened.status_code == 302  # Stripe's onboarding, done; back to our page
    assert "/api/v1/payouts/onboarding?state=done" in opened.headers["location"]


def _statements() -> list[Any]:
    return _rows(
        "SELECT id, driver_id, period, net, carried_in, payout_amount, carry_out, "
        "payout_status, payout_error, transfer_id, payout_attempts FROM settlements "
        "ORDER BY driver_id, period"
    )


def _transfers(settings: Any) -> list[Any]:
    listed = stripe_client().v1.transfers.list(params={"limit": 100})
    return sorted((t.id, t.destination, t.amount) for t in listed.data)


def _position(driver_id: str) -> dict[str, int]:
    """The driver's ledger accounts: what we owe them (payable), the cash they hold, and
    what was paid out."""
    rows = _rows(
        "SELECT l.account, e.kind, sum(l.amount) AS total FROM ledger_lines l "
        "JOIN journal_entries e ON e.id = l.entry_id WHERE l.account LIKE :a "
        "GROUP BY l.account, e.kind",
        a=f"%:{driver_id}",
    )
    out = {"earned": 0, "cash_held": 0, "paid": 0}
    for r in rows:
        if r["kind"] == "payout":
            out["paid"] += r["total"]
        elif r["account"].startswith("driver_payable"):
            out["earned"] += -r["total"]
        else:
            out["cash_held"] += r["total"]
    return out


def test_beat_pays_statements_once_and_they_match_the_ledger_to_the_cent(
    client: TestClient, settings: Any, beat: None
) -> None:
    base = settings.stripe_api_base
    a, b, c = (register(client, "driver") for _ in range(3))
    _onboard(client, a)
    _onboard(client, c)
    _backdate(_card_trip(client, a), 1)
    _backdate(_card_trip(client, b), 1)
    _backdate(_cash_trip(client, c), 2)  # C owes commission on this day
    _backdate(_card_trip(client, c), 1)

    # the beat closes both days; card funds are still pending at "Stripe"
    st = until(lambda: (s := _statements()) and len(s) == 4 and s, timeout=30)
    owed, c_day2 = (r for r in st if str(r["driver_id"]) == c.id)  # by period
    assert owed["net"] < 0
    assert (owed["payout_status"], owed["carry_out"]) == ("carried", owed["net"])
    assert c_day2["carried_in"] == owed["net"]
    assert c_day2["payout_amount"] == c_day2["net"] + owed["net"] > 0

    def refused() -> bool:
        errors = {str(r["driver_id"]): r["payout_error"] for r in _statements()}
        return (errors.get(a.id), errors.get(b.id), errors.get(c.id)) == (
            "balance_insufficient",
            "no_payout_account",
            "balance_insufficient",
        )

    until(refused, timeout=30)
    assert _transfers(settings) == []
    assert all(r["payout_status"] in ("payable", "carried") for r in _statements())

    # funds arrive (a top-up with Stripe's 0077 test card), B onboards; one transfer
    # meets a 409: its key still in flight at Stripe
    httpx.post(
        f"{base}/_config/faults",
        json={
            "path_prefix": "/v1/transfers",
            "method": "POST",
            "status": 409,
            "count": 1,
            "error": {
                "type": "idempotency_error",
                "message": "There is currently another in-progress request using this key.",
            },
        },
    ).raise_for_status()
    stripe_client().v1.payment_intents.create(
        params={
            "amount": 100_000,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "allowed_payment_method_types": ["card"],
            "confirm": True,
        }
    )
    _onboard(client, b)
    try:
        until(
            lambda: all(r["payout_status"] in ("paid", "carried") for r in _statements()),
            timeout=60,
        )
    except AssertionError:
        print(_statements())
        print(httpx.get(f"{base}/_config/requests", params={"path_prefix": "/v1/transfers"}).json())
        raise
    calls = [
        r
        for r in httpx.get(f"{base}/_config/requests", params={"path_prefix": "/v1/transfers"})
        .raise_for_status()
        .json()
        if r["method"] == "POST"
    ]
    conflicted = [r for r in calls if r["status"] == 409]
    assert len(conflicted) == 1
    assert any(
        r["status"] == 200 and r["idempotency_key"] == conflicted[0]["idempotency_key"]
        for r in calls
    )  # the same attempt, retried

    statements = _statements()
    transfers = _transfers(settings)
    accounts = {
        str(r["id"]): r["stripe_account_id"]
        for r in _rows("SELECT id, stripe_account_id FROM users WHERE role = 'driver'")
    }
    paid = [r for r in statements if r["payout_status"] == "paid"]
    assert len(paid) == 3
    assert len(transfers) == 3
    assert (
        sorted((r["transfer_id"], accounts[str(r["driver_id"])], r["payout_amount"]) for r in paid)
        == transfers
    )
    for d in (a, b, c):
        mine = [r for r in statements if str(r["driver_id"]) == d.id]
        pos = _position(d.id)
        # statements are the ledger's days, to the cent
        assert sum(r["net"] for r in mine) == pos["earned"] - pos["cash_held"]
        # what was transferred is what the ledger booked as paid out
        assert sum(r["payout_amount"] for r in mine if r["payout_status"] == "paid") == pos["paid"]
        # and what is left is what the last statement carries (0, or what the driver owes)
        assert pos["earned"] - pos["cash_held"] - pos["paid"] == mine[-1]["carry_out"]
        earnings = client.get("/api/v1/drivers/me/earnings", headers=d.headers).json()
        assert earnings["balances"][0]["net_payable"] == mine[-1]["carry_out"]
    listed = client.get("/api/v1/drivers/me/settlements", headers=c.headers).json()["items"]
    assert [i["payout"]["status"] for i in listed] == ["paid", "carried"]
    assert listed[0]["payout"]["transfer_id"].startswith("tr_")

    # more runs of both jobs (counted as the worker finishes them) change nothing
    runs_before = _runs("payments.pay_out"), _runs("payments.settle_day")
    until(
        lambda: (
            _runs("payments.pay_out") >= runs_before[0] + 3
            and _runs("payments.settle_day") >= runs_before[1] + 3
        ),
        timeout=30,
    )
    assert _statements() == statements
    assert _transfers(settings) == transfers
    assert len(_rows("SELECT id FROM journal_entries WHERE kind = 'payout'")) == 3


def test_only_a_driver_has_a_payout_account(client: TestClient) -> None:
    p = register(client, "passenger")
    r = client.post("/api/v1/drivers/me/payout-account", headers=p.headers)
    assert r.status_code == 403
    assert client.post("/api/v1/drivers/me/payout-account").status_code == 401
    d = register(client, "driver")
    first = client.post("/api/v1/drivers/me/payout-account", headers=d.headers).json()["url"]
    again = client.post("/api/v1/drivers/me/payout-account", headers=d.headers).json()["url"]
    accounts = _rows("SELECT stripe_account_id FROM users WHERE id = :d", d=d.id)
    assert accounts[0]["stripe_account_id"].startswith("acct_")
    assert accounts[0]["stripe_account_id"] in first
    assert accounts[0]["stripe_account_id"] in again  # one account, however often asked
    page = client.get("/api/v1/payouts/onboarding?state=expired")
    assert page.status_code == 200
    assert "expired" in page.text
