"""The Stripe SDK client: real Stripe with `RIDEHAIL_STRIPE_API_KEY`, else the offline
stand-in at `RIDEHAIL_STRIPE_API_BASE` (see docs/stripe-standin.md)."""

from __future__ import annotations

from typing import Any

import stripe
from sqlmodel import Session

from infra.models import User
from infra.settings import get_settings

OFFLINE_KEY = "sk_test_offline_standin"


def stripe_client(retries: int = 2) -> stripe.StripeClient:
    """Requests that answer a user wait for Stripe: a couple of quick retries, no more."""
    s = get_settings()
    kwargs: dict[str, Any] = {"max_network_retries": retries}
    if not s.stripe_api_key:
        kwargs["base_addresses"] = {"api": s.stripe_api_base}
    return stripe.StripeClient(s.stripe_api_key or OFFLINE_KEY, **kwargs)


def ensure_customer(session: Session, user: User) -> str:
    """The passenger's Stripe customer, created once (the idempotency key makes a retry or
    a concurrent request create no second one)."""
    if user.stripe_customer_id:
        return user.stripe_customer_id
    customer = stripe_client().v1.customers.create(
        params={"email": user.email, "name": user.name, "metadata": {"user_id": str(user.id)}},
        options={"idempotency_key": f"customer-{user.id}"},
    )
    user.stripe_customer_id = customer.id
    session.add(user)
    return customer.id
