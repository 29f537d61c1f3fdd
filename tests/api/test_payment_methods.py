"""Saving a card through the SetupIntent client secret, as the app does, against the
offline Stripe stand-in; listing, defaulting and detaching saved cards."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from infra.stripe_gateway import stripe_client
from tests.factories import Account, register


def _save_card(client: TestClient, p: Account, pm: str) -> dict[str, Any]:
    r = client.post("/api/v1/payments/setup-intent", headers=p.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["client_secret"].startswith(body["setup_intent_id"])
    # the device: Stripe's SDK confirms with the client secret; the card never reaches us
    confirmed = stripe_client().v1.setup_intents.confirm(
        body["setup_intent_id"], params={"payment_method": pm}
    )
    assert confirmed.status == "succeeded"
    return body


def test_save_list_default_and_detach_cards(client: TestClient) -> None:
    p = register(client, "passenger")
    first = _save_card(client, p, "pm_card_visa")
    second = _save_card(client, p, "pm_card_mastercard")
    assert first["customer_id"] == second["customer_id"]  # one customer per passenger
    cards = client.get("/api/v1/payments/methods", headers=p.headers).json()["items"]
    assert sorted(c["brand"] for c in cards) == ["mastercard", "visa"]
    assert all(c["last4"] and not c["default"] for c in cards)
    visa = next(c for c in cards if c["brand"] == "visa")
    r = client.post(f"/api/v1/payments/methods/{visa['id']}/default", headers=p.headers)
    assert r.status_code == 200
    assert r.json()["default"] is True
    cards = client.get("/api/v1/payments/methods", headers=p.headers).json()["items"]
    assert [c["brand"] for c in cards if c["default"]] == ["visa"]
    assert (
        client.delete(f"/api/v1/payments/methods/{visa['id']}", headers=p.headers).status_code
        == 204
    )
    cards = client.get("/api/v1/payments/methods", headers=p.headers).json()["items"]
    assert [c["brand"] for c in cards] == ["mastercard"]
    customer = stripe_client().v1.customers.retrieve(first["customer_id"])
    assert customer.metadata["user_id"] == p.id


def test_another_passengers_card_does_not_exist_for_you(client: TestClient) -> None:
    a = register(client, "passenger")
    b = register(client, "passenger")
    _save_card(client, a, "pm_card_visa")
    card = client.get("/api/v1/payments/methods", headers=a.headers).json()["items"][0]
    for r in (
        client.delete(f"/api/v1/payments/methods/{card['id']}", headers=b.headers),
        client.post(f"/api/v1/payments/methods/{card['id']}/default", headers=b.headers),
        client.delete("/api/v1/payments/methods/pm_nope", headers=b.headers),
    ):
        assert r.status_code == 404
        assert r.json()["code"] == "payment_method_not_found"
    assert len(client.get("/api/v1/payments/methods", headers=a.headers).json()["items"]) == 1
    d = register(client, "driver")
    assert client.post("/api/v1/payments/setup-intent", headers=d.headers).status_code == 403


def test_stripe_down_is_a_clear_503(client: TestClient, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    monkeypatch.setattr(settings, "stripe_api_base", "http://127.0.0.1:9")
    r = client.post("/api/v1/payments/setup-intent", headers=p.headers)
    assert r.status_code == 503
    assert r.json()["code"] == "payment_provider_unavailable"
