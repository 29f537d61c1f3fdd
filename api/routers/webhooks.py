"""Stripe webhooks: verify the signature, store the event once, answer 2xx fast.

A worker reconciles by reading the object's current state from Stripe, so duplicate
and out-of-order deliveries change nothing. An empty secret verifies nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from api.deps import SettingsDep
from api.errors import ApiError, error_responses
from infra.stripe_gateway import InvalidWebhook, verify_webhook
from infra.webhooks import store_new_event

router = APIRouter(prefix="/api/v1/webhooks", tags=["payments"])


class WebhookAck(BaseModel):
    """What Stripe is told: the event is stored (Stripe only reads the status)."""

    received: bool = Field(description="Always true: the event is stored.")
    duplicate: bool = Field(description="True when this event id was stored before.")


@router.post("/stripe", response_model=WebhookAck, responses=error_responses(400))
async def stripe_webhook(
    request: Request,
    settings: SettingsDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """For Stripe only: an event, verified by its `Stripe-Signature` against the
    endpoint's secret, stored once by its id and reconciled in the background (a worker
    reads the object's current state from Stripe, so order and repeats do not matter).
    Answers 2xx at once; a bad signature or payload is a 400."""
    secret = settings.stripe_webhook_secret
    if not secret:
        raise ApiError(400, "webhooks are not configured here", "webhooks_disabled")
    payload = (await request.body()).decode("utf-8", errors="replace")
    try:
        verify_webhook(payload, stripe_signature, secret)
    except InvalidWebhook as exc:
        raise ApiError(400, str(exc), "invalid_signature") from exc
    try:
        event = json.loads(payload)
        event_id, event_type = str(event["id"]), str(event["type"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, "not a Stripe event", "invalid_payload") from exc
    # SQL off the event loop: a blocked loop could not finish the request whose Stripe call
    # sent this very event (SQLite's writer lock made that a deadlock)
    new = await asyncio.to_thread(store_new_event, event_id, event_type, event)
    return {"received": True, "duplicate": not new}
