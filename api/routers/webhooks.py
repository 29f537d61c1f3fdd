"""Stripe webhooks: verify the signature, store the event once, answer 2xx fast.

A worker reconciles by reading the object's current state from Stripe, so duplicate
and out-of-order deliveries change nothing. An empty secret verifies nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Header, Request

from api.deps import SettingsDep
from api.errors import ApiError
from infra.db import unit_of_work
from infra.webhooks import store_event

router = APIRouter(prefix="/api/v1/webhooks", tags=["payments"])


@router.post("/stripe")
async def stripe_webhook(
    request: Request,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    secret = settings.stripe_webhook_secret
    if not secret:
        raise ApiError(400, "webhooks are not configured here", "webhooks_disabled")
    payload = (await request.body()).decode("utf-8", errors="replace")
    try:
        stripe.WebhookSignature.verify_header(payload, stripe_signature, secret, 300)
        timestamp, _ = stripe.WebhookSignature._get_timestamp_and_signatures(
            stripe_signature or "", "v1"
        )
    except (stripe.SignatureVerificationError, ValueError, IndexError) as exc:
        raise ApiError(400, "invalid Stripe-Signature", "invalid_signature") from exc
    if timestamp > time.time() + 300:  # the SDK accepts any future time; a replay window
        raise ApiError(400, "Stripe-Signature timestamp is in the future", "invalid_signature")
    try:
        event = json.loads(payload)
        event_id, event_type = str(event["id"]), str(event["type"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "not a Stripe event", "invalid_payload") from exc
    # SQL off the event loop: a blocked loop could not finish the request whose Stripe call
    # sent this very event (SQLite's writer lock made that a deadlock)
    new = await asyncio.to_thread(_store, event_id, event_type, event)
    return {"received": True, "duplicate": not new}


def _store(event_id: str, event_type: str, event: dict[str, Any]) -> bool:
    with unit_of_work() as session:
        return store_event(session, event_id, event_type, event)
