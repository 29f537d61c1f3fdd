"""Stripe's behaviour as the project relies on it, through the official SDK (stripe 16).

Each test pins one documented behaviour. They run against the stand-in, and against real
Stripe test mode when `RIDEHAIL_STRIPE_API_KEY` holds a test key (see conftest.py), so
they use only Stripe's documented test payment methods and behaviour; `standin_only`
tests use the stand-in's `/_config` endpoints (faults, webhooks, the request record).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import httpx
import pytest
import stripe

from tests.contract.conftest import Receiver, StandIn, Target
from tests.wait import until

CARD = ["card"]


def new_customer(client: stripe.StripeClient, **params: Any) -> stripe.Customer:
    data: Any = {"email": "rider@example.com", **params}
    return client.v1.customers.create(params=data)


def new_setup_intent(client: stripe.StripeClient, customer: stripe.Customer) -> stripe.SetupIntent:
    """What the service makes for the device to save a card on (off-session use later)."""
    return client.v1.setup_intents.create(
        params={
            "customer": customer.id,
            "usage": "off_session",
            "allowed_payment_method_types": CARD,
        }
    )


def save_card(
    client: stripe.StripeClient, customer: stripe.Customer, payment_method: str = "pm_card_visa"
) -> str:
    """What the device does with the SetupIntent's client secret: confirm it with a card."""
    intent = new_setup_intent(client, customer)
    intent = client.v1.setup_intents.confirm(intent.id, params={"payment_method": payment_method})
    assert intent.status == "succeeded"
    assert isinstance(intent.payment_method, str)
    return intent.payment_method


def authorize(
    client: stripe.StripeClient,
    customer: stripe.Customer,
    payment_method: str,
    amount: int = 1500,
    key: str | None = None,
    **extra: Any,
) -> stripe.PaymentIntent:
    """A ride's authorization: manual capture, confirmed off-session with the saved card."""
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "customer": customer.id,
        "payment_method": payment_method,
        "allowed_payment_method_types": CARD,
        "capture_method": "manual",
        "confirm": True,
        "off_session": True,
        "description": "Ride 42",
        "metadata": {"ride_id": "42"},
        "statement_descriptor_suffix": "RIDE 42",
        **extra,
    }
    options = {"idempotency_key": key} if key else None
    return client.v1.payment_intents.create(params=params, options=options)  # type: ignore[arg-type]


def charge_now(
    client: stripe.StripeClient, amount: int = 2000, payment_method: str = "pm_card_visa"
) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": payment_method,
            "allowed_payment_method_types": CARD,
            "confirm": True,
        }
    )


# auth ------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not-a-key"])
def test_a_request_without_a_valid_api_key_is_refused_with_401(
    target: Target, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{target.base}/v1/customers", headers=headers, timeout=20)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_basic_auth_with_the_secret_key_is_accepted(target: Target) -> None:
    response = httpx.get(
        f"{target.base}/v1/customers", params={"limit": 1}, auth=(target.api_key, ""), timeout=20
    )
    assert response.status_code == 200
    assert response.json()["object"] == "list"


# customers and saved cards ---------------------------------------------------


def test_a_customer_is_created_and_retrieved(client: stripe.StripeClient) -> None:
    customer = new_customer(client, name="Ada", metadata={"user_id": "7"})
    assert customer.id.startswith("cus_")
    again = client.v1.customers.retrieve(customer.id)
    assert again.metadata is not None
    assert (again.email, again.name, again.metadata.to_dict()) == (
        "rider@example.com",
        "Ada",
        {"user_id": "7"},
    )


def test_an_unknown_customer_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_doesnotexist000")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"


def test_a_setup_intent_gives_a_client_secret_and_its_confirm_saves_the_card(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    intent = new_setup_intent(client, customer)
    assert intent.status == "requires_payment_method"
    assert intent.client_secret
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    confirmed = client.v1.setup_intents.confirm(
        intent.id, params={"payment_method": "pm_card_visa"}
    )
    assert confirmed.status == "succeeded"
    pm_id = confirmed.payment_method
    assert isinstance(pm_id, str)
    assert pm_id.startswith("pm_")
    assert pm_id != "pm_card_visa"
    pm = client.v1.payment_methods.retrieve(pm_id)
    assert pm.customer == customer.id
    assert pm.card is not None
    assert (pm.card.brand, pm.card.last4) == ("visa", "4242")
    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [p.id for p in listed.data] == [pm_id]
    listed = client.v1.customers.payment_methods.list(customer.id, params={"type": "card"})
    assert [p.id for p in listed.data] == [pm_id]


def _as_stripe_js(target: Target, path: str, **params: str) -> httpx.Response:
    """A call as Stripe.js makes it from a page: form-encoded, no Authorization header,
    the publishable key as the `key` parameter, from another origin."""
    if not target.publishable_key:
        pytest.skip("set RIDEHAIL_STRIPE_PUBLISHABLE_KEY to check Stripe.js's calls on Stripe")
    return httpx.post(
        f"{target.base}{path}",
        data={"key": target.publishable_key, **params},
        headers={"Origin": "http://127.0.0.1:8000"},
        timeout=20,
    )


def test_a_page_saves_a_card_with_the_publishable_key_as_stripe_js_does(
    target: Target, client: stripe.StripeClient
) -> None:
    customer = new_customer(client)
    intent = new_setup_intent(client, customer)
    assert intent.client_secret
    year = str(time.gmtime().tm_year + 2)
    card = {"type": "card", "card[exp_month]": "12", "card[exp_year]": year, "card[cvc]": "123"}
    made = _as_stripe_js(
        target, "/v1/payment_methods", **card, **{"card[number]": "4242424242424242"}
    )
    assert made.status_code == 200, made.text
    assert made.headers["access-control-allow-origin"] == "*"  # a page on any site reads it
    pm = made.json()
    assert (pm["object"], pm["card"]["last4"], pm["customer"]) == ("payment_method", "4242", None)
    # the client secret is what lets a publishable key act on the intent
    wrong = _as_stripe_js(
        target,
        f"/v1/setup_intents/{intent.id}/confirm",
        payment_method=pm["id"],
        client_secret=f"{intent.id}_secret_wrong",
    )
    assert wrong.status_code == 400
    confirmed = _as_stripe_js(
        target,
        f"/v1/setup_intents/{intent.id}/confirm",
        payment_method=pm["id"],
        client_secret=intent.client_secret,
        use_stripe_sdk="true",
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "succeeded"
    assert client.v1.payment_methods.retrieve(pm["id"]).customer == customer.id
    # a mistyped number is refused before any bank sees it; the key cannot read customers
    typo = _as_stripe_js(
        target, "/v1/payment_methods", **card, **{"card[number]": "4242424242424241"}
    )
    assert typo.status_code == 402
    assert (typo.json()["error"]["type"], typo.json()["error"]["code"]) == (
        "card_error",
        "incorrect_number",
    )
    listed = httpx.get(
        f"{target.base}/v1/customers", params={"key": target.publishable_key}, timeout=20
    )
    assert listed.status_code == 401


def test_the_default_card_is_set_on_the_customer_and_a_detached_card_leaves(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    visa = save_card(client, customer)
    mastercard = save_card(client, customer, "pm_card_mastercard")
    updated = client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": mastercard}}
    )
    assert updated.invoice_settings is not None
    assert updated.invoice_settings.default_payment_method == mastercard
    detached = client.v1.payment_methods.detach(visa)
    assert detached.customer is None
    remaining = client.v1.customers.payment_methods.list(customer.id)
    assert [p.id for p in remaining.data] == [mastercard]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_methods.detach(visa)
    assert caught.value.http_status == 400


def test_only_an_attached_card_can_be_the_default(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    stranger = save_card(client, new_customer(client))
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": stranger}}
        )
    assert caught.value.http_status == 400


# authorize and capture -------------------------------------------------------


def test_a_manual_capture_payment_is_authorized_with_amount_capturable(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer), amount=1500)
    assert intent.status == "requires_capture"
    assert (intent.amount, intent.amount_capturable, intent.amount_received) == (1500, 1500, 0)
    assert intent.metadata.to_dict() == {"ride_id": "42"}
    assert intent.description == "Ride 42"
    charge = client.v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert (charge.captured, charge.amount_captured, charge.paid) == (False, 0, True)
    assert charge.payment_method_details
    assert charge.payment_method_details.card
    assert charge.payment_method_details.card.capture_before
    outcome = charge.outcome
    assert outcome is not None
    assert outcome.network_status == "approved_by_network"
    assert outcome.type == "authorized"
    assert outcome.risk_level in ("normal", "elevated", "highest", "not_assessed")
    assert isinstance(outcome.risk_score, int)


def test_latest_charge_is_an_id_unless_expanded(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    assert isinstance(intent.latest_charge, str)
    assert intent.latest_charge.startswith("ch_")
    expanded = client.v1.payment_intents.retrieve(intent.id, params={"expand": ["latest_charge"]})
    assert isinstance(expanded.latest_charge, stripe.Charge)
    assert expanded.latest_charge.id == intent.latest_charge


def test_a_partial_capture_receives_that_amount_and_releases_the_rest(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer), amount=1500)
    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1000})
    assert captured.status == "succeeded"
    assert (captured.amount, captured.amount_received, captured.amount_capturable) == (
        1500,
        1000,
        0,
    )
    charge = client.v1.charges.retrieve(captured.latest_charge)  # type: ignore[arg-type]
    assert (charge.captured, charge.amount, charge.amount_captured) == (True, 1500, 1000)
    # the remainder is released, not refunded (no Refund object since API 2025-03-31)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    refunds = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert refunds.data == []


def test_capturing_more_than_authorized_is_refused(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer), amount=1500)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1600})
    assert caught.value.http_status == 400
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_capture"


def test_cancel_releases_the_authorization(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.amount_capturable == 0
    charge = client.v1.charges.retrieve(canceled.latest_charge)  # type: ignore[arg-type]
    # a released authorization shows on its charge as refunded in full
    assert (charge.captured, charge.amount_captured) == (False, 0)
    assert (charge.refunded, charge.amount_refunded) == (True, 1500)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.capture(intent.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    events = until(
        lambda: [
            e
            for e in client.v1.events.list(params={"type": "charge.refunded", "limit": 20}).data
            if e.data.object["id"] == charge.id  # type: ignore[index]
        ],
        timeout=20,
    )
    assert events[0].data.object["amount_refunded"] == 1500  # type: ignore[index]


def test_authorized_card_charges_carry_capture_before(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    card = charge.payment_method_details.card  # type: ignore[union-attr]
    assert card is not None
    assert card.capture_before is not None
    # between 4 days 18 hours (Visa, merchant-initiated) and 7 days from the authorization
    assert 4 * 86400 + 18 * 3600 - 60 <= card.capture_before - charge.created <= 7 * 86400 + 60


def test_a_succeeded_payment_cannot_be_canceled(client: stripe.StripeClient) -> None:
    intent = charge_now(client)
    assert intent.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(intent.id)
    assert caught.value.code == "payment_intent_unexpected_state"


def test_confirm_works_with_and_without_a_payment_method(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    pm = save_card(client, customer)
    bare = client.v1.payment_intents.create(
        params={
            "amount": 900,
            "currency": "usd",
            "customer": customer.id,
            "allowed_payment_method_types": CARD,
            "capture_method": "manual",
        }
    )
    assert bare.status == "requires_payment_method"
    confirmed = client.v1.payment_intents.confirm(
        bare.id, params={"payment_method": pm, "off_session": True}
    )
    assert confirmed.status == "requires_capture"
    ready = client.v1.payment_intents.create(
        params={
            "amount": 900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": pm,
            "allowed_payment_method_types": CARD,
        }
    )
    assert ready.status == "requires_confirmation"
    assert client.v1.payment_intents.confirm(ready.id).status == "succeeded"


# idempotency -----------------------------------------------------------------


def test_an_idempotent_replay_returns_the_first_answer_and_creates_one_payment(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    pm = save_card(client, customer)
    key = f"ride:{uuid.uuid4()}:authorize"
    first = authorize(client, customer, pm, key=key)
    second = authorize(client, customer, pm, key=key)
    assert second.id == first.id
    assert second.last_response is not None
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    listed = client.v1.payment_intents.list(params={"customer": customer.id})
    assert [p.id for p in listed.data] == [first.id]


def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    pm = save_card(client, customer)
    key = f"ride:{uuid.uuid4()}:authorize"
    authorize(client, customer, pm, amount=1500, key=key)
    with pytest.raises(stripe.IdempotencyError) as caught:
        authorize(client, customer, pm, amount=1600, key=key)
    assert caught.value.http_status == 400
    assert caught.value.error is not None
    assert caught.value.error.type == "idempotency_error"


def test_a_replayed_decline_is_the_same_402(client: stripe.StripeClient) -> None:
    key = f"ride:{uuid.uuid4()}:charge"
    params = {
        "amount": 1500,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "allowed_payment_method_types": CARD,
        "confirm": True,
    }
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": key},
            )
        errors.append(caught.value)
    assert errors[0].error
    assert errors[1].error
    assert errors[0].error.payment_intent
    assert errors[1].error.payment_intent
    assert errors[0].error.payment_intent.id == errors[1].error.payment_intent.id


@pytest.mark.standin_only
def test_idempotency_keys_are_scoped_per_api_key(target: Target) -> None:
    key = f"shared:{uuid.uuid4()}"
    one = target.client(api_key="sk_test_account_one").v1.customers.create(
        params={"email": "one@example.com"}, options={"idempotency_key": key}
    )
    two = target.client(api_key="sk_test_account_two").v1.customers.create(
        params={"email": "two@example.com"}, options={"idempotency_key": key}
    )
    assert one.id != two.id


# declines and 3-D Secure -----------------------------------------------------


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_a_declined_card_fails_when_charged_with_402(
    client: stripe.StripeClient, payment_method: str, decline_code: str
) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "payment_method": payment_method,
                "allowed_payment_method_types": CARD,
                "capture_method": "manual",
                "confirm": True,
            }
        )
    error = caught.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == decline_code
    failed = error.error.payment_intent
    assert failed is not None
    assert failed.status == "requires_payment_method"
    intent = client.v1.payment_intents.retrieve(failed.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.code == "card_declined"
    assert intent.last_payment_error.decline_code == decline_code
    charge = client.v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert (charge.status, charge.failure_code, charge.paid) == ("failed", "card_declined", False)
    assert charge.outcome is not None
    assert charge.outcome.network_status == "declined_by_network"


def test_a_saved_card_can_decline_when_charged_off_session(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    pm = save_card(client, customer, "pm_card_chargeCustomerFail")  # attaching succeeds
    with pytest.raises(stripe.CardError) as caught:
        authorize(client, customer, pm)
    assert caught.value.http_status == 402
    assert caught.value.code == "card_declined"
    assert caught.value.error
    assert caught.value.error.payment_intent
    assert caught.value.error.payment_intent.status == "requires_payment_method"


def test_a_declining_card_is_refused_when_saved(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = new_setup_intent(client, customer)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.setup_intents.confirm(
            intent.id, params={"payment_method": "pm_card_chargeDeclined"}
        )
    assert caught.value.http_status == 402
    assert caught.value.code == "card_declined"
    assert client.v1.setup_intents.retrieve(intent.id).status == "requires_payment_method"
    assert client.v1.customers.payment_methods.list(customer.id).data == []


def test_authentication_required_off_session_is_a_402_and_needs_the_customer(
    client: stripe.StripeClient,
) -> None:
    customer = new_customer(client)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            params={
                "amount": 1500,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": "pm_card_authenticationRequired",
                "allowed_payment_method_types": CARD,
                "capture_method": "manual",
                "confirm": True,
                "off_session": True,
            }
        )
    error = caught.value
    assert error.http_status == 402
    assert error.code == "authentication_required"
    assert error.error is not None
    assert error.error.decline_code == "authentication_required"
    assert error.error.payment_method is not None  # to retry on-session with
    failed = error.error.payment_intent
    assert failed is not None
    assert failed.status == "requires_payment_method"
    intent = client.v1.payment_intents.retrieve(failed.id)
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.code == "authentication_required"


def test_authentication_on_session_requires_action(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "allowed_payment_method_types": CARD,
            "capture_method": "manual",
            "confirm": True,
        }
    )
    assert intent.status == "requires_action"
    assert intent.next_action is not None
    assert intent.next_action.type in ("use_stripe_sdk", "redirect_to_url")


@pytest.mark.standin_only
def test_after_3ds_on_the_device_the_server_confirms_and_captures(
    client: stripe.StripeClient, standin: StandIn
) -> None:
    customer = new_customer(client)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_authenticationRequired",
            "allowed_payment_method_types": CARD,
            "capture_method": "manual",
            "confirmation_method": "manual",
            "confirm": True,
        }
    )
    assert intent.status == "requires_action"
    assert standin.authenticate(intent.id)["status"] == "requires_confirmation"
    confirmed = client.v1.payment_intents.confirm(intent.id)
    assert confirmed.status == "requires_capture"
    charge = client.v1.charges.retrieve(confirmed.latest_charge)  # type: ignore[arg-type]
    assert charge.payment_method_details
    assert charge.payment_method_details.card
    assert charge.payment_method_details.card.three_d_secure is not None


def test_setup_future_usage_saves_the_card_to_the_customer(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "allowed_payment_method_types": CARD,
            "setup_future_usage": "off_session",
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"
    saved = client.v1.customers.payment_methods.list(customer.id)
    assert [p.id for p in saved.data] == [intent.payment_method]
    again = authorize(client, customer, str(intent.payment_method))  # reusable off-session
    assert again.status == "requires_capture"


@pytest.mark.standin_only
def test_a_card_authenticated_at_setup_pays_off_session_later(
    client: stripe.StripeClient, standin: StandIn
) -> None:
    customer = new_customer(client)
    setup = client.v1.setup_intents.create(
        params={
            "customer": customer.id,
            "usage": "off_session",
            "allowed_payment_method_types": CARD,
        }
    )
    setup = client.v1.setup_intents.confirm(
        setup.id, params={"payment_method": "pm_card_authenticationRequiredOnSetup"}
    )
    assert setup.status == "requires_action"
    assert setup.next_action is not None
    assert setup.next_action.use_stripe_sdk is not None
    challenge = setup.next_action.use_stripe_sdk["stripe_js"]  # the device opens it
    assert httpx.get(challenge, timeout=10).status_code == 200
    setup = client.v1.setup_intents.retrieve(setup.id)
    assert setup.status == "succeeded"
    intent = authorize(client, customer, str(setup.payment_method))
    assert intent.status == "requires_capture"  # no new challenge off-session
    on_session = client.v1.payment_intents.create(
        params={
            "amount": 900,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": str(setup.payment_method),
            "allowed_payment_method_types": CARD,
            "confirm": True,
        }
    )
    assert on_session.status == "requires_action"  # on-session payments still ask


# refunds ---------------------------------------------------------------------


def test_refunds_partial_then_the_rest_then_none_left(client: stripe.StripeClient) -> None:
    intent = charge_now(client, amount=2000)
    partial = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 500, "reason": "requested_by_customer"}
    )
    assert (partial.status, partial.amount, partial.reason) == (
        "succeeded",
        500,
        "requested_by_customer",
    )
    charge = client.v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    rest = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert rest.amount == 1500
    charge = client.v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert (charge.amount_refunded, charge.refunded) == (2000, True)
    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert {r.id for r in listed.data} == {partial.id, rest.id}
    assert client.v1.refunds.retrieve(partial.id).charge == charge.id
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 100})
    assert caught.value.code == "charge_already_refunded"


def test_a_refund_is_never_more_than_captured_minus_refunded(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer), amount=1500)
    client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1000})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1200})
    assert caught.value.http_status == 400
    assert caught.value.param == "amount"
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 700})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 400})
    assert caught.value.param == "amount"
    last = client.v1.refunds.create(params={"charge": str(intent.latest_charge)})
    assert last.amount == 300


def test_an_uncaptured_payment_is_canceled_not_refunded(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert caught.value.http_status == 400


# what Stripe refuses ---------------------------------------------------------


def test_an_unknown_parameter_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            params=cast(Any, {"amount": 1500, "currency": "usd", "ride": "42"})
        )
    assert caught.value.code == "parameter_unknown"
    assert caught.value.param == "ride"


@pytest.mark.parametrize(
    "payment_methods",
    [{"automatic_payment_methods": {"enabled": True}}, {}],  # explicit, or Stripe's default
)
def test_automatic_payment_methods_need_a_return_url_unless_redirects_are_off(
    client: stripe.StripeClient, payment_methods: dict[str, Any]
) -> None:
    params: Any = {
        "amount": 1500,
        "currency": "usd",
        "confirm": True,
        "payment_method": "pm_card_visa",
        **payment_methods,
    }
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params=params)
    assert caught.value.param == "return_url"
    params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
    assert client.v1.payment_intents.create(params=params).status == "succeeded"
    params["automatic_payment_methods"] = {"enabled": True}
    params["return_url"] = "https://example.com/back"
    assert client.v1.payment_intents.create(params=params).status == "succeeded"


def test_payment_method_types_is_refused_on_the_sdks_api_version(
    client: stripe.StripeClient,
) -> None:
    # Stripe removed it as a parameter in 2026-09-30.endive; the SDK pins a later version
    assert stripe.api_version >= "2026-09-30"
    params: Any = {"usage": "off_session", "payment_method_types": ["card"]}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.setup_intents.create(params=params)
    assert caught.value.http_status == 400
    assert caught.value.code == "payment_method_types_no_longer_supported"
    older = client.v1.setup_intents.create(
        params=params, options={"stripe_version": "2025-03-31.basil"}
    )
    assert older.payment_method_types == ["card"]


def test_an_amount_below_the_minimum_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(
            params={"amount": 20, "currency": "usd", "allowed_payment_method_types": CARD}
        )
    assert caught.value.code == "amount_too_small"


# Connect ---------------------------------------------------------------------


@pytest.fixture
def connected_account(target: Target, client: stripe.StripeClient) -> str:
    """An account that finished onboarding (its `transfers` capability active)."""
    if target.real:
        import os

        account = os.environ.get("RIDEHAIL_STRIPE_TEST_ACCOUNT", "")
        if not account.startswith("acct_"):
            pytest.skip("set RIDEHAIL_STRIPE_TEST_ACCOUNT to an onboarded connected account")
        return account
    created = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "driver@example.com",
            "capabilities": {"transfers": {"requested": True}},
        }
    )
    link = client.v1.account_links.create(
        params={
            "account": created.id,
            "type": "account_onboarding",
            "refresh_url": "https://example.com/refresh",
            "return_url": "https://example.com/return",
        }
    )
    opened = httpx.get(link.url, follow_redirects=False, timeout=10)  # the driver onboards
    assert opened.status_code == 302
    assert opened.headers["location"] == "https://example.com/return"
    return created.id


def test_a_transfer_to_a_connected_account_is_idempotent(
    client: stripe.StripeClient, connected_account: str
) -> None:
    account = client.v1.accounts.retrieve(connected_account)
    assert account.capabilities is not None
    assert account.capabilities.transfers == "active"
    charge_now(client, amount=5000, payment_method="pm_card_bypassPending")  # available funds
    group = f"settlement:{uuid.uuid4()}"
    params = {
        "amount": 1200,
        "currency": "usd",
        "destination": connected_account,
        "transfer_group": group,
        "metadata": {"settlement_id": "9"},
    }
    key = f"{group}:transfer"
    first = client.v1.transfers.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    second = client.v1.transfers.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert second.id == first.id
    assert (first.amount, first.currency, first.destination) == (1200, "usd", connected_account)
    assert client.v1.transfers.retrieve(first.id).metadata.to_dict() == {"settlement_id": "9"}
    listed = client.v1.transfers.list(params={"transfer_group": group})
    assert [t.id for t in listed.data] == [first.id]


def test_a_destination_charge_pays_the_connected_account_on_capture(
    client: stripe.StripeClient, connected_account: str
) -> None:
    customer = new_customer(client)
    intent = authorize(
        client,
        customer,
        save_card(client, customer),
        amount=1500,
        transfer_data={"destination": connected_account},
        application_fee_amount=200,
    )
    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1000})
    charge = client.v1.charges.retrieve(str(captured.latest_charge))
    assert isinstance(charge.transfer, str)
    transfer = client.v1.transfers.retrieve(charge.transfer)
    assert (transfer.amount, transfer.destination) == (800, connected_account)


def _amount(side: Any, currency: str = "usd") -> int:
    return sum(b.amount for b in side if b.currency == currency)


def test_card_funds_are_pending_until_available_and_transfers_draw_on_available_only(
    client: stripe.StripeClient, connected_account: str
) -> None:
    before = client.v1.balance.retrieve()
    charge_now(client, amount=4000)  # an ordinary test card: its funds wait
    after = client.v1.balance.retrieve()
    fee = round(4000 * 0.029) + 30
    assert _amount(after.pending) - _amount(before.pending) in (4000 - fee, 4000)
    assert _amount(after.available) == _amount(before.available)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.create(
            params={
                "amount": _amount(after.available) + 1_000_000,
                "currency": "usd",
                "destination": connected_account,
            }
        )
    assert caught.value.http_status == 400
    assert caught.value.code == "balance_insufficient"


def test_bypass_pending_card_funds_are_available_at_once(client: stripe.StripeClient) -> None:
    before = _amount(client.v1.balance.retrieve().available)
    charge_now(client, amount=3000, payment_method="pm_card_bypassPending")
    assert _amount(client.v1.balance.retrieve().available) - before == 3000 - (
        round(3000 * 0.029) + 30
    )


def test_a_transfer_needs_the_transfers_capability(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "capabilities": {"transfers": {"requested": True}},
        }
    )
    assert account.id.startswith("acct_")
    assert client.v1.accounts.retrieve(account.id).details_submitted is False
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.transfers.create(
            params={"amount": 1000, "currency": "usd", "destination": account.id}
        )
    assert caught.value.http_status == 400


# webhooks --------------------------------------------------------------------


@pytest.mark.standin_only
def test_webhooks_are_signed_so_construct_event_verifies_them(
    client: stripe.StripeClient, standin: StandIn, receiver: Receiver
) -> None:
    secret = "whsec_contract"
    standin.webhook("app", receiver.url, secret)
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    until(
        lambda: any(
            e["type"] == "payment_intent.amount_capturable_updated" for e in receiver.events()
        )
    )
    raw = next(
        r for r in receiver.received if '"payment_intent.amount_capturable_updated"' in r["body"]
    )
    event = stripe.Webhook.construct_event(raw["body"], raw["headers"]["Stripe-Signature"], secret)
    assert event.type == "payment_intent.amount_capturable_updated"
    assert event.id.startswith("evt_")
    assert event.object == "event"
    assert event.livemode is False
    assert event.api_version
    assert event.created
    assert event.data.object["id"] == intent.id
    assert event.data.object["status"] == "requires_capture"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(raw["body"], raw["headers"]["Stripe-Signature"], "whsec_x")


@pytest.mark.standin_only
def test_a_failing_webhook_endpoint_is_retried_with_backoff(
    client: stripe.StripeClient, standin: StandIn, receiver: Receiver
) -> None:
    secret = "whsec_retry"
    standin.webhook("app", receiver.url, secret, events=["customer.created"])
    receiver.statuses = [500, 503]  # down twice, then up
    customer = new_customer(client)
    event = receiver.wait_for("customer.created", customer.id)
    attempts = [r for r in receiver.received if event["id"] in r["body"]]
    assert [a["status"] for a in attempts] == [500, 503, 200]
    for attempt in attempts:  # every attempt is signed afresh and verifies
        stripe.Webhook.construct_event(
            attempt["body"], attempt["headers"]["Stripe-Signature"], secret
        )
    deliveries = standin.deliveries(event=event["id"])
    assert [d["attempt"] for d in deliveries] == [1, 2, 3]
    assert deliveries[-1]["delivered"] is True
    # exponential backoff: the stand-in here waits 0.05 s, then 0.1 s (at least)
    gaps = [b["at"] - a["at"] for a, b in zip(deliveries, deliveries[1:], strict=False)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1


@pytest.mark.standin_only
def test_the_payment_flows_send_their_events(
    client: stripe.StripeClient, standin: StandIn, receiver: Receiver
) -> None:
    standin.webhook("app", receiver.url, "whsec_flows")
    customer = new_customer(client)
    pm = save_card(client, customer)
    authorized = authorize(client, customer, pm)
    client.v1.payment_intents.capture(authorized.id, params={"amount_to_capture": 1000})
    refund = client.v1.refunds.create(params={"payment_intent": authorized.id, "amount": 200})
    client.v1.refunds.update(refund.id, params={"metadata": {"reason": "detour"}})
    canceled = authorize(client, customer, pm)
    client.v1.payment_intents.cancel(canceled.id)
    with pytest.raises(stripe.CardError):
        charge_now(client, payment_method="pm_card_chargeDeclined")
    client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "allowed_payment_method_types": CARD,
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
        }
    )
    client.v1.payment_methods.detach(pm)
    account = client.v1.accounts.create(
        params={"type": "express", "capabilities": {"transfers": {"requested": True}}}
    )
    standin.http.post(f"/_config/accounts/{account.id}/onboard").raise_for_status()
    charge_now(client, amount=1000, payment_method="pm_card_bypassPending")  # available funds
    client.v1.transfers.create(params={"amount": 500, "currency": "usd", "destination": account.id})
    expected = {
        "setup_intent.succeeded",
        "payment_method.attached",
        "payment_method.detached",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
        "charge.captured",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "transfer.created",
    }
    until(lambda: expected <= {e["type"] for e in receiver.events()})


@pytest.mark.standin_only
def test_an_endpoint_created_through_the_api_gets_events_signed_with_its_secret(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["customer.created"]}
    )
    assert endpoint.secret is not None
    assert endpoint.secret.startswith("whsec_")
    customer = new_customer(client)
    event = receiver.wait_for("customer.created", customer.id)
    raw = next(r for r in receiver.received if event["id"] in r["body"])
    stripe.Webhook.construct_event(raw["body"], raw["headers"]["Stripe-Signature"], endpoint.secret)
    client.v1.webhook_endpoints.delete(endpoint.id)


@pytest.mark.standin_only
def test_a_refund_of_the_refund_fail_card_turns_failed(
    client: stripe.StripeClient, standin: StandIn, receiver: Receiver
) -> None:
    standin.http.post("/_config/settings", json={"refund_failure_delay_s": 0.05})
    standin.webhook("app", receiver.url, "whsec_refunds", events=["refund.failed"])
    intent = charge_now(client, payment_method="pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.status == "succeeded"
    receiver.wait_for("refund.failed", refund.id)
    assert client.v1.refunds.retrieve(refund.id).status == "failed"
    charge = client.v1.charges.retrieve(intent.latest_charge)  # type: ignore[arg-type]
    assert charge.amount_refunded == 0


def test_events_are_listed_by_type(client: stripe.StripeClient) -> None:
    started = int(time.time()) - 5
    customer = new_customer(client)

    def listed() -> bool:
        events = client.v1.events.list(
            params={"type": "customer.created", "created": {"gte": started}, "limit": 100}
        )
        return any(e.data.object["id"] == customer.id for e in events.data)

    until(listed, timeout=30, interval=0.5)


# faults, the record, reset ---------------------------------------------------


@pytest.mark.standin_only
def test_the_sdk_retries_an_injected_500_with_the_same_key_and_succeeds(
    target: Target, standin: StandIn
) -> None:
    standin.fault(path_prefix="/v1/customers", method="POST", status=500, count=2)
    customer = target.client(retries=2).v1.customers.create(params={"email": "r@example.com"})
    seen = standin.requests("/v1/customers")
    assert [r["status"] for r in seen] == [500, 500, 200]
    assert len({r["idempotency_key"] for r in seen}) == 1
    assert customer.id.startswith("cus_")


@pytest.mark.standin_only
def test_without_retries_an_injected_500_is_an_api_error(target: Target, standin: StandIn) -> None:
    standin.fault(path_prefix="/v1/payment_intents", status=500, count=1)
    with pytest.raises(stripe.APIError) as caught:
        target.client().v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})
    assert caught.value.http_status == 500
    assert target.client().v1.payment_intents.list().data == []  # nothing was created


@pytest.mark.standin_only
def test_an_injected_429_is_a_rate_limit_error_with_stripes_body(
    target: Target, standin: StandIn
) -> None:
    standin.fault(path_prefix="/v1/refunds", status=429, count=1)
    with pytest.raises(stripe.RateLimitError) as caught:
        target.client(retries=2).v1.refunds.create(params={"payment_intent": "pi_x"})
    assert caught.value.http_status == 429
    assert caught.value.error is not None
    assert caught.value.error.code == "rate_limit"
    assert len(standin.requests("/v1/refunds")) == 1  # no Stripe-Should-Retry: no SDK retry


@pytest.mark.standin_only
def test_a_key_reused_while_its_first_request_runs_is_a_409_the_gateway_calls_transient(
    target: Target, standin: StandIn
) -> None:
    import threading

    from domain.payments import ProviderUnavailable
    from infra.stripe_gateway import stripe_outcomes

    # the first request is slow inside Stripe (held before it is handled)
    standin.fault(path_prefix="/v1/customers", method="POST", delay_s=1.5, after=False, count=1)
    key = f"customer-{uuid.uuid4()}"
    first: list[Any] = []
    slow = threading.Thread(
        target=lambda: first.append(
            target.client().v1.customers.create(
                params={"email": "a@example.com"}, options={"idempotency_key": key}
            )
        )
    )
    slow.start()
    time.sleep(0.5)
    with pytest.raises(stripe.APIError) as caught:  # the SDK's class for a 409
        target.client().v1.customers.create(
            params={"email": "a@example.com"}, options={"idempotency_key": key}
        )
    assert caught.value.http_status == 409
    assert caught.value.error is not None
    assert caught.value.error.type == "idempotency_error"
    with pytest.raises(ProviderUnavailable), stripe_outcomes():  # retried by our workers
        raise caught.value
    slow.join()
    again = target.client().v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": key}
    )
    assert again.id == first[0].id  # once the first is done, the key replays it


@pytest.mark.standin_only
def test_a_timed_out_create_retried_by_the_sdk_creates_one_payment_intent(
    target: Target, standin: StandIn
) -> None:
    client = target.client()
    customer = new_customer(client)
    pm = save_card(client, customer)
    standin.fault(path_prefix="/v1/payment_intents", method="POST", delay_s=1.5, count=1)
    slow_client = target.client(retries=2, http_client=stripe.RequestsClient(timeout=0.5))
    intent = authorize(slow_client, customer, pm, key=f"ride:{uuid.uuid4()}:authorize")
    assert intent.status == "requires_capture"
    assert [
        p.id for p in client.v1.payment_intents.list(params={"customer": customer.id}).data
    ] == [intent.id]
    replays = [r for r in standin.requests("/v1/payment_intents") if r["replayed"]]
    assert len(replays) == 1


@pytest.mark.standin_only
def test_every_request_is_recorded_with_its_decoded_params(
    client: stripe.StripeClient, standin: StandIn
) -> None:
    customer = new_customer(client, metadata={"user_id": "7"})
    client.v1.customers.retrieve(customer.id)
    record = standin.requests("/v1/customers")
    assert [(r["method"], r["status"]) for r in record] == [("POST", 200), ("GET", 200)]
    assert record[0]["params"] == {"email": "rider@example.com", "metadata": {"user_id": "7"}}
    assert record[0]["idempotency_key"]
    assert record[1]["path"] == f"/v1/customers/{customer.id}"
    assert isinstance(record[0]["at"], float)
    standin.http.delete("/_config/requests").raise_for_status()
    assert standin.requests() == []


@pytest.mark.standin_only
def test_reset_forgets_objects_faults_and_keys(
    client: stripe.StripeClient, standin: StandIn
) -> None:
    customer = new_customer(client)
    standin.fault(path_prefix="/v1/transfers", status=500, count=5)
    standin.reset()
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)
    assert standin.http.get("/_config/faults").json() == []


@pytest.mark.standin_only
def test_a_fault_can_aim_at_one_action_by_its_path_suffix(
    client: stripe.StripeClient, standin: StandIn
) -> None:
    customer = new_customer(client)
    intent = authorize(client, customer, save_card(client, customer))
    standin.fault(path_prefix="/v1/payment_intents/", path_suffix="/capture", status=500)
    client.v1.payment_intents.retrieve(intent.id)  # not a capture: untouched
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.capture(intent.id)
    assert client.v1.payment_intents.capture(intent.id).status == "succeeded"
    [fault] = standin.http.get("/_config/faults").json()
    assert (fault["path_suffix"], fault["hits"]) == ("/capture", 1)


@pytest.mark.standin_only
def test_events_are_delivered_again_on_demand_in_the_order_asked(
    client: stripe.StripeClient, standin: StandIn, receiver: Receiver
) -> None:
    standin.webhook("app", receiver.url, "whsec_resend", events=["customer.created"])
    first, second = new_customer(client), new_customer(client)
    a = receiver.wait_for("customer.created", first.id)
    b = receiver.wait_for("customer.created", second.id)
    receiver.received.clear()
    r = standin.http.post("/_config/events/resend", json={"events": [b["id"], a["id"]], "times": 2})
    assert r.json() == {"scheduled": 4}
    until(lambda: len(receiver.received) == 4)
    ids = [json.loads(x["body"])["id"] for x in receiver.received]
    assert sorted(ids) == sorted([a["id"], a["id"], b["id"], b["id"]])
    for x in receiver.received:  # each signed anew, and verifies
        stripe.Webhook.construct_event(x["body"], x["headers"]["Stripe-Signature"], "whsec_resend")
    missing = standin.http.post("/_config/events/resend", json={"events": ["evt_nope"]})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "resource_missing"
