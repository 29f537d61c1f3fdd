"""Where the Stripe contract tests run: the stand-in, or real Stripe test mode.

By default the stand-in (`python -m devtools.stripe_standin`) is started on a free port for
the session and reset before each test. When `RIDEHAIL_STRIPE_API_KEY` holds a test key
(`sk_test_...`) the same tests run against api.stripe.com instead, and those marked
`standin_only` (fault injection, `/_config/*`, webhooks to a local receiver) are skipped.
Transfers against real Stripe also need `RIDEHAIL_STRIPE_TEST_ACCOUNT`: a connected
account that finished onboarding (its `transfers` capability active).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devtools import launcher
from tests.services import free_port
from tests.wait import until

ROOT = Path(__file__).resolve().parents[2]
REAL_KEY = os.environ.get("RIDEHAIL_STRIPE_API_KEY", "")
REAL = REAL_KEY.startswith("sk_test_")
STRIPE_API = "https://api.stripe.com"
# Stripe.js's side (saving a card in a page) needs the account's publishable key on Stripe
REAL_PUBLISHABLE_KEY = os.environ.get("RIDEHAIL_STRIPE_PUBLISHABLE_KEY", "")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "standin_only: needs the stand-in (its /_config endpoints); skipped on Stripe"
    )


@dataclass
class Target:
    api_key: str
    base: str  # the API's base URL
    real: bool
    publishable_key: str = "pk_test_contract"

    def client(
        self,
        *,
        retries: int = 0,
        api_key: str | None = None,
        http_client: stripe.HTTPClient | None = None,
    ) -> stripe.StripeClient:
        kwargs: dict[str, Any] = {"max_network_retries": retries}
        if not self.real:
            kwargs["base_addresses"] = {"api": self.base}
        if http_client is not None:
            kwargs["http_client"] = http_client
        return stripe.StripeClient(api_key or self.api_key, **kwargs)


@dataclass
class StandIn:
    """The stand-in's `/_config` endpoints."""

    base: str
    http: httpx.Client

    def reset(self) -> None:
        self.http.post("/_config/reset", json={"webhooks": True}).raise_for_status()

    def fault(self, **fault: Any) -> dict[str, Any]:
        response = self.http.post("/_config/faults", json=fault)
        response.raise_for_status()
        return response.json()

    def requests(self, path_prefix: str | None = None) -> list[dict[str, Any]]:
        params = {"path_prefix": path_prefix} if path_prefix else {}
        return self.http.get("/_config/requests", params=params).json()

    def webhook(self, name: str, url: str, secret: str, events: list[str] | None = None) -> None:
        data: dict[str, Any] = {"url": url, "secret": secret}
        if events is not None:
            data["events[]"] = events
        self.http.post(f"/_config/webhooks/{name}", data=data).raise_for_status()

    def deliveries(self, **query: str) -> list[dict[str, Any]]:
        return self.http.get("/_config/webhook_deliveries", params=query).json()

    def authenticate(self, intent_id: str, success: bool = True) -> dict[str, Any]:
        response = self.http.post(
            f"/_config/intents/{intent_id}/authenticate", json={"success": success}
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="session")
def _standin_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    if REAL:
        yield None
        return
    port = free_port()
    log = tmp_path_factory.mktemp("stripe-standin") / "standin.log"
    proc = launcher.start_stripe_standin(
        port,
        extra=["--webhook-backoff", "0.05", "--webhook-attempts", "4"]
        + ["--webhook-timeout", "2", "--log-level", "WARNING"],
        log=log,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        launcher.stop(proc)


@pytest.fixture(scope="session")
def target(_standin_process: str | None) -> Target:
    if REAL:
        return Target(REAL_KEY, STRIPE_API, real=True, publishable_key=REAL_PUBLISHABLE_KEY)
    assert _standin_process is not None
    return Target("sk_test_contract_" + "0" * 8, _standin_process, real=False)


@pytest.fixture
def standin(target: Target) -> Iterator[StandIn]:
    if target.real:
        pytest.skip("needs the stand-in's /_config endpoints")
    with httpx.Client(base_url=target.base, timeout=10) as http:
        yield StandIn(target.base, http)


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, target: Target) -> None:
    if target.real:
        if request.node.get_closest_marker("standin_only"):
            pytest.skip("stand-in only (fault injection, /_config, local webhooks)")
        return
    httpx.post(
        f"{target.base}/_config/reset", json={"webhooks": True}, timeout=10
    ).raise_for_status()


@pytest.fixture
def client(target: Target) -> stripe.StripeClient:
    return target.client()


# a local webhook receiver ----------------------------------------------------


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to give first, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            bodies = [json.loads(r["body"]) for r in self.received if r["status"] == 200]
        return [e for e in bodies if type_ is None or e["type"] == type_]

    def wait_for(self, type_: str, object_id: str, timeout: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events(type_):
                if event["data"]["object"]["id"] == object_id:
                    return event
            return None

        event = until(found, timeout=timeout)
        assert event is not None
        return event


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    box = Receiver(f"http://127.0.0.1:{port}/stripe/webhook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with box.lock:
                status = box.statuses.pop(0) if box.statuses else 200
                box.received.append(
                    {"headers": dict(self.headers), "body": body.decode(), "status": status}
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
