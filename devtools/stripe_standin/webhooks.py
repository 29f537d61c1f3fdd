"""Signed webhook delivery in the background, with retries and exponential backoff.

Each attempt is signed at send time (`Stripe-Signature: t=<now>,v1=<hmac>`), the HMAC-SHA256
of `"{t}.{payload}"` with the endpoint's secret: what `stripe.Webhook.construct_event`
checks, and fresh enough for its timestamp tolerance however late the retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger("stripe_standin.webhooks")


@dataclass
class Settings:
    webhook_backoff_s: float = 1.0  # first retry after this, then doubling
    webhook_max_backoff_s: float = 300.0
    webhook_attempts: int = 6  # first try included
    webhook_timeout_s: float = 10.0
    refund_failure_delay_s: float = 1.0  # pm_card_refundFail: refund turns failed after this
    # card funds join the available balance this long after capture (test mode: days;
    # the 4000000000000077 card, `pm_card_bypassPending`, makes them available at once)
    funds_available_after_s: float = 2 * 24 * 3600.0

    def update(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown setting: {key}")
            current = getattr(self, key)
            setattr(self, key, type(current)(value))


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    events: list[str] | None = None  # None or ["*"]: every event
    enabled: bool = True
    # set when created through `POST /v1/webhook_endpoints`
    api_object: dict[str, Any] | None = None

    def wants(self, event_type: str) -> bool:
        if not self.enabled:
            return False
        return self.events is None or "*" in self.events or event_type in self.events

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "enabled": self.enabled,
        }


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Deliverer:
    settings: Settings
    endpoints: dict[str, Endpoint]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    def schedule(self, event: dict[str, Any], label: str | None = None) -> None:
        """Start delivering `event` to every endpoint that wants it, in the background.

        `pending_webhooks` is set to the number of endpoints and counts down as they
        acknowledge; the payload is the event as it is now.
        """
        targets = [e for e in self.endpoints.values() if e.wants(event["type"])]
        event["pending_webhooks"] = len(targets)
        if not targets:
            return
        payload = json.dumps(event, indent=2).encode()
        loop = asyncio.get_running_loop()
        for endpoint in targets:
            task = loop.create_task(self._deliver(event, endpoint, payload, label))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, event: dict[str, Any], endpoint: Endpoint, payload: bytes, label: str | None
    ) -> None:
        s = self.settings
        for attempt in range(1, max(1, s.webhook_attempts) + 1):
            if attempt > 1:
                delay = min(s.webhook_backoff_s * 2 ** (attempt - 2), s.webhook_max_backoff_s)
                await asyncio.sleep(delay)
            if not endpoint.enabled:
                return
            status: int | None = None
            error: str | None = None
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": sign(payload, endpoint.secret, timestamp),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            }
            try:
                session = self._client()
                timeout = aiohttp.ClientTimeout(total=s.webhook_timeout_s)
                async with session.post(
                    endpoint.url, data=payload, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivered = status is not None and 200 <= status < 300
            self.deliveries.append(
                {
                    "event": event["id"],
                    "type": event["type"],
                    "endpoint": endpoint.id,
                    "url": endpoint.url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "delivered": delivered,
                    "at": time.time(),
                    "label": label,  # a delivery asked for again (resend) carries its label
                }
            )
            if delivered:
                log.info("webhook %s %s delivered to %s", event["type"], event["id"], endpoint.url)
                event["pending_webhooks"] = max(0, int(event.get("pending_webhooks", 1)) - 1)
                return
            log.info(
                "webhook %s to %s failed (attempt %d): %s",
                event["type"],
                endpoint.url,
                attempt,
                status if status is not None else error,
            )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def close(self) -> None:
        await self.cancel_all()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._tasks)
