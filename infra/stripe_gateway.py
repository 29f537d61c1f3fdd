"""The one Stripe gateway: every call the project makes, its idempotency key, and the one
mapping of Stripe's errors to `domain.payments` outcomes.

Real Stripe with `RIDEHAIL_STRIPE_API_KEY`, else the offline stand-in at
`RIDEHAIL_STRIPE_API_BASE` (docs/stripe-standin.md). Keys are made of domain ids
(`ride-{id}-capture`, `refund-{id}`): a retry, a redelivered task or a worker killed
mid-call repeats the same request, and Stripe answers it once. Requests that answer a
user wait briefly (a couple of SDK retries); workers pass `retries=0` and let Celery
retry with backoff (`ProviderUnavailable` is the transient outcome).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import stripe

from domain.payments import (
    STRIPE_REFUND_REASONS,
    CardDeclined,
    PaymentObjectMissing,
    PaymentRefused,
    ProviderUnavailable,
)
from domain.usecases.ports import Card, IntentInfo, SetupIntentInfo
from infra.settings import get_settings

OFFLINE_KEY = "sk_test_offline_standin"
WEBHOOK_TOLERANCE_S = 300


def stripe_client(retries: int = 2) -> stripe.StripeClient:
    s = get_settings()
    # a stalled Stripe call times out (and is retried with its key) rather than holding a
    # request or a worker for the SDK's default 80 s
    kwargs: dict[str, Any] = {
        "max_network_retries": retries,
        "http_client": stripe.RequestsClient(timeout=s.stripe_timeout_s),
    }
    if not s.stripe_api_key:
        kwargs["base_addresses"] = {"api": s.stripe_api_base}
    return stripe.StripeClient(s.stripe_api_key or OFFLINE_KEY, **kwargs)


@contextmanager
def stripe_outcomes() -> Iterator[None]:
    """Stripe's errors, mapped once: a card's answer, a refusal, a missing object, or a
    fault worth retrying."""
    try:
        yield
    except stripe.CardError as exc:
        err: Any = exc.error
        intent = getattr(err, "payment_intent", None) if err else None
        raise CardDeclined(
            exc.user_message or "the card was declined",
            code=((getattr(err, "code", None) if err else None) or exc.code or "card_declined"),
            decline_code=getattr(err, "decline_code", None) if err else None,
            intent_id=getattr(intent, "id", None) if intent is not None else None,
        ) from exc
    except stripe.IdempotencyError as exc:
        # (400) the key was used for another request: a bug of ours, never fixed by retrying.
        # The same key while its first request still runs is a 409, which the SDK raises as
        # an APIError: transient, below.
        raise PaymentRefused(str(exc.user_message or exc), code="idempotency_error") from exc
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise PaymentObjectMissing("payment method not found") from exc
        raise PaymentRefused(
            exc.user_message or "rejected by the payment provider",
            code=exc.code or "payment_provider_rejected",
        ) from exc
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise ProviderUnavailable("the payment provider is unreachable; try again") from exc
    except stripe.StripeError as exc:
        raise ProviderUnavailable("the payment provider failed; try again") from exc


def _card(pm: Any, default: str | None = None) -> Card:
    card = getattr(pm, "card", None)
    return Card(
        id=pm.id,
        brand=getattr(card, "brand", None),
        last4=getattr(card, "last4", None),
        exp_month=getattr(card, "exp_month", None),
        exp_year=getattr(card, "exp_year", None),
        default=pm.id == default,
    )


class StripeGateway:
    def __init__(self, retries: int = 2) -> None:
        self.client = stripe_client(retries)

    # --- customers and saved cards ---------------------------------------------------------
    def create_customer(self, user_id: UUID, email: str, name: str) -> str:
        with stripe_outcomes():
            customer = self.client.v1.customers.create(
                params={"email": email, "name": name, "metadata": {"user_id": str(user_id)}},
                options={"idempotency_key": f"customer-{user_id}"},
            )
        return customer.id

    def setup_intent(self, customer: str, user_id: UUID) -> SetupIntentInfo:
        with stripe_outcomes():
            intent = self.client.v1.setup_intents.create(
                params={
                    "customer": customer,
                    "usage": "off_session",
                    # API 2026-09-30+: `payment_method_types` is refused on intents
                    "allowed_payment_method_types": ["card"],
                    "metadata": {"user_id": str(user_id)},
                }
            )
        assert intent.client_secret is not None
        return SetupIntentInfo(intent.id, intent.client_secret, customer)

    def default_card(self, customer: str) -> str | None:
        with stripe_outcomes():
            c = self.client.v1.customers.retrieve(customer)
        default = getattr(getattr(c, "invoice_settings", None), "default_payment_method", None)
        return default if isinstance(default, str) or default is None else default.id

    def saved(self, customer: str) -> list[Card]:
        with stripe_outcomes():
            cards = self.client.v1.customers.payment_methods.list(
                customer, params={"type": "card", "limit": 100}
            )
        default = self.default_card(customer)
        return [_card(pm, default) for pm in cards.data]

    def charging_card(self, customer: str) -> str | None:
        """The card to charge off-session: the default, else the first saved one."""
        default = self.default_card(customer)
        if default:
            return default
        with stripe_outcomes():
            cards = self.client.v1.customers.payment_methods.list(customer, params={"type": "card"})
        return cards.data[0].id if cards.data else None

    def owned(self, customer: str, payment_method_id: str) -> Card:
        with stripe_outcomes():
            pm = self.client.v1.payment_methods.retrieve(payment_method_id)
        if getattr(pm, "customer", None) != customer:
            # someone else's card, or none: it does not exist for this rider
            raise PaymentObjectMissing("payment method not found")
        return _card(pm)

    def detach(self, customer: str, payment_method_id: str) -> None:
        with stripe_outcomes():
            self.client.v1.payment_methods.detach(
                payment_method_id,
                options={"idempotency_key": f"detach-{customer}-{payment_method_id}"},
            )

    def make_default(self, customer: str, payment_method_id: str) -> None:
        with stripe_outcomes():
            self.client.v1.customers.update(
                customer,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
            )

    # --- PaymentIntents ----------------------------------------------------------------------
    def charge_off_session(
        self,
        *,
        payment_id: UUID,
        ride_id: UUID,
        amount: int,
        currency: str,
        customer: str,
        payment_method: str,
        hold: bool,
        purpose: str,
    ) -> Any:
        """A PaymentIntent on a saved card with the rider absent: held for a later capture
        when `hold` (the ride's authorization), else charged at once (`purpose` "extra").
        Cards only, never a redirect: there is no page to return to."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "payment_method": payment_method,
            "confirm": True,
            "off_session": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "description": f"ride {ride_id}" + ("" if hold else " (beyond the hold)"),
            "metadata": {"ride_id": str(ride_id), "payment_id": str(payment_id)},
            "expand": ["latest_charge"],
        }
        if hold:
            params["capture_method"] = "manual"
        with stripe_outcomes():
            return self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"ride-{ride_id}-{purpose}"},
            )

    def capture(self, intent_id: str, ride_id: UUID, amount: int) -> Any:
        with stripe_outcomes():
            return self.client.v1.payment_intents.capture(
                intent_id,
                params={"amount_to_capture": amount, "expand": ["latest_charge"]},
                options={"idempotency_key": f"ride-{ride_id}-capture"},
            )

    def release(self, intent_id: str, ride_id: UUID) -> Any:
        with stripe_outcomes():
            return self.client.v1.payment_intents.cancel(
                intent_id, options={"idempotency_key": f"ride-{ride_id}-release"}
            )

    def intent(self, intent_id: str) -> Any:
        with stripe_outcomes():
            return self.client.v1.payment_intents.retrieve(
                intent_id, params={"expand": ["latest_charge"]}
            )

    def intent_info(self, intent_id: str) -> IntentInfo:
        intent = self.intent(intent_id)
        return IntentInfo(
            intent.id, intent.client_secret, intent.status, intent.amount, intent.currency
        )

    def confirm(self, intent_id: str, payment_id: UUID) -> Any:
        intent = self.intent(intent_id)
        if intent.status != "requires_confirmation":
            return intent
        with stripe_outcomes():
            return self.client.v1.payment_intents.confirm(
                intent.id, options={"idempotency_key": f"confirm-{payment_id}-{intent.id}"}
            )

    # --- refunds -----------------------------------------------------------------------------
    def refund(self, refund_id: UUID, intent_id: str, amount: int, reason: str) -> Any:
        params: dict[str, Any] = {
            "payment_intent": intent_id,
            "amount": amount,
            "metadata": {"refund_id": str(refund_id), "reason": reason[:400]},
        }
        if reason in STRIPE_REFUND_REASONS:
            params["reason"] = reason
        with stripe_outcomes():
            return self.client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"refund-{refund_id}"},
            )

    def refund_state(self, stripe_refund_id: str) -> str:
        with stripe_outcomes():
            return str(self.client.v1.refunds.retrieve(stripe_refund_id).status)

    # --- Connect: drivers' payout accounts and transfers ------------------------------------
    def create_payout_account(self, driver_id: UUID, email: str) -> str:
        """An Express connected account for a driver, created once (the key)."""
        with stripe_outcomes():
            created = self.client.v1.accounts.create(
                params={
                    "type": "express",
                    "email": email,
                    "capabilities": {"transfers": {"requested": True}},
                    "metadata": {"driver_id": str(driver_id)},
                },
                options={"idempotency_key": f"account-{driver_id}"},
            )
        return created.id

    def onboarding_link(self, account_id: str, refresh_url: str, return_url: str) -> str:
        with stripe_outcomes():
            link = self.client.v1.account_links.create(
                params={
                    "account": account_id,
                    "type": "account_onboarding",
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                }
            )
        return link.url

    def transfer(
        self,
        *,
        key: str,
        statement_id: UUID,
        driver_id: UUID,
        destination: str,
        amount: int,
        currency: str,
    ) -> str:
        """A statement's payout to the driver's connected account; the transfer's id."""
        with stripe_outcomes():
            made = self.client.v1.transfers.create(
                params={
                    "amount": amount,
                    "currency": currency,
                    "destination": destination,
                    "transfer_group": f"statement-{statement_id}",
                    "description": f"ridehail statement {statement_id}",
                    "metadata": {"statement_id": str(statement_id), "driver_id": str(driver_id)},
                },
                options={"idempotency_key": key},
            )
        return made.id


class InvalidWebhook(Exception):
    pass


def verify_webhook(payload: str, signature: str | None, secret: str) -> None:
    """Stripe's own signature check, with a tolerance both ways (the SDK accepts any
    future timestamp; a replay window needs both ends)."""
    import time

    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, WEBHOOK_TOLERANCE_S)
        timestamp, _ = stripe.WebhookSignature._get_timestamp_and_signatures(signature or "", "v1")
    except (stripe.SignatureVerificationError, ValueError, IndexError) as exc:
        raise InvalidWebhook("invalid Stripe-Signature") from exc
    if timestamp > time.time() + WEBHOOK_TOLERANCE_S:
        raise InvalidWebhook("Stripe-Signature timestamp is in the future")
