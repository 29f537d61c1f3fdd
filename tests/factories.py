"""Factories that make users, tokens and rides through the public HTTP API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine
from infra.stripe_gateway import stripe_client
from tests.wait import until

_seq = itertools.count(1)
PASSWORD = "correct horse battery"

# Two points in Berlin about 4.9 km apart by road
PICKUP = {"lat": 52.5200, "lng": 13.4050}
DROPOFF = {"lat": 52.5000, "lng": 13.4500}


@dataclass
class Account:
    id: str
    email: str
    role: str
    token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register(client: TestClient, role: str, **extra: Any) -> Account:
    n = next(_seq)
    email = extra.pop("email", f"{role}{n}@example.com")
    body = {"email": email, "password": PASSWORD, "name": f"{role.title()} {n}", "role": role}
    r = client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 201, r.text
    return login(client, email, r.json()["id"], role)


def login(client: TestClient, email: str, user_id: str, role: str) -> Account:
    r = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    return Account(user_id, email, role, tokens["access_token"], tokens["refresh_token"])


def request_ride(
    client: TestClient, passenger: Account, payment: str = "cash", **headers: str
) -> dict[str, Any]:
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": payment},
        headers={**passenger.headers, **headers},
    )
    assert r.status_code == 201, r.text
    return r.json()


def grant_offer(ride_id: str, driver_id: str) -> None:
    """What dispatch would do for a driver near the pickup: an open offer of this ride,
    and its push (`dispatch.make_offer`, in a unit of work of its own)."""
    import uuid

    from domain.dispatch import Candidate
    from domain.usecases.dispatch import make_offer
    from infra.db import utcnow
    from infra.unit_of_work import sql_unit_of_work

    with sql_unit_of_work() as uow:
        ride = uow.dispatching.ride(uuid.UUID(ride_id))
        assert ride is not None
        for mine in uow.dispatching.pending(ride.id):
            if str(mine.driver_id) == driver_id:
                return
        offer = make_offer(uow, ride, Candidate(driver_id, 100.0), 1, utcnow(), 60.0)
        assert offer is not None, "the driver holds another open offer"


def advance(client: TestClient, ride_id: str, driver: Account, *actions: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for action in actions:
        if action == "accept":
            grant_offer(ride_id, driver.id)
        r = client.post(f"/api/v1/rides/{ride_id}/{action}", headers=driver.headers)
        assert r.status_code == 200, (action, r.text)
        body = r.json()
    return body


# --- card rides: a passenger with a saved card, a card ride, its payment rows ---------
def card_passenger(client: TestClient, pm: str = "pm_card_visa") -> Account:
    p = register(client, "passenger")
    si = client.post("/api/v1/payments/setup-intent", headers=p.headers).json()
    stripe_client().v1.setup_intents.confirm(si["setup_intent_id"], params={"payment_method": pm})
    return p


def card_ride(client: TestClient, p: Account) -> dict[str, Any]:
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "card"},
        headers=p.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def payment_row(ride_id: str, kind: str = "authorization") -> Any:
    with get_engine().connect() as conn:
        return (
            conn.execute(
                text("SELECT * FROM payments WHERE ride_id = :r AND kind = :k"),
                {"r": ride_id, "k": kind},
            )
            .mappings()
            .first()
        )


def held(ride_id: str) -> Any:
    """Wait until the worker's hold on the card stands; the authorization row."""
    return until(lambda: (a := payment_row(ride_id)) and a["status"] == "requires_capture" and a)


def ledger_sum() -> int:
    with get_engine().connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(sum(amount),0) FROM ledger_lines")).scalar_one()
        )


def pay_on_device(stripe_base: str, intent_id: str, payment_method: str) -> None:
    """What the app does with a PaymentIntent the service hands it: confirm it with Stripe's
    SDK, passing 3-D Secure in the stand-in when the bank asks for it."""
    import httpx

    device = stripe_client().v1.payment_intents.confirm(
        intent_id, params={"payment_method": payment_method}
    )
    if device.status == "requires_action":
        httpx.post(
            f"{stripe_base}/_config/intents/{intent_id}/authenticate", json={"success": True}
        ).raise_for_status()
