"""The stand-in's memory: Stripe objects as the JSON Stripe returns, events, and config.

Objects are stored as the dicts the API answers with; references between them are
ids, expanded on request (`expand[]=latest_charge`). What Stripe keeps but does not
show (the card number behind a PaymentMethod, whether a card was set up for
off-session use) lives in `hidden`.
"""

from __future__ import annotations

import contextvars
import copy
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from devtools.stripe_standin.errors import invalid, no_such
from devtools.stripe_standin.params import Params
from devtools.stripe_standin.webhooks import Deliverer, Endpoint, Settings

Obj = dict[str, Any]

try:  # events carry the API version of the SDK the project uses
    import stripe as _stripe

    DEFAULT_API_VERSION = str(_stripe.api_version)
except Exception:  # pragma: no cover - the SDK is a dependency of the project
    DEFAULT_API_VERSION = "2025-03-31.basil"

_ALNUM = string.ascii_letters + string.digits

# the request an event comes from: (request id, idempotency key)
current_request: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "current_request", default=(None, None)
)
# the Stripe-Version the caller asked for
current_version: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_version", default=None
)

# id prefix -> object name, for expansion
KINDS = {
    "cus_": "customer",
    "pm_": "payment_method",
    "seti_": "setup_intent",
    "pi_": "payment_intent",
    "ch_": "charge",
    "re_": "refund",
    "acct_": "account",
    "tr_": "transfer",
    "trr_": "transfer_reversal",
    "evt_": "event",
    "we_": "webhook_endpoint",
    "txn_": "balance_transaction",
    "py_": "charge",
}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def now() -> int:
    return int(time.time())


@dataclass
class Fault:
    """A failure to answer the next `count` matching requests with (or a delay)."""

    id: str
    path_prefix: str = "/v1/"
    method: str | None = None
    status: int | None = None
    delay_s: float = 0.0
    after: bool = True  # a delay runs after the request was handled (the answer is late)
    count: int = 1
    error: dict[str, Any] | None = None
    should_retry: bool | None = None  # Stripe-Should-Retry header
    path_suffix: str | None = None  # e.g. "/capture": one action on any object
    label: str | None = None  # the caller's name for it, kept in the record of faults served
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path_suffix and not path.endswith(self.path_suffix):
            return False
        return path.startswith(self.path_prefix)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path_prefix": self.path_prefix,
            "path_suffix": self.path_suffix,
            "method": self.method,
            "status": self.status,
            "delay_s": self.delay_s,
            "after": self.after,
            "count": self.count,
            "hits": self.hits,
            "error": self.error,
            "should_retry": self.should_retry,
            "label": self.label,
        }


@dataclass
class Saved:
    """A response stored under an idempotency key."""

    method: str
    path: str
    params: str  # canonical JSON of the decoded parameters
    status: int
    body: bytes
    request_id: str
    at: float


class State:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.objects: dict[str, Obj] = {}
        self.hidden: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[tuple[str, str, str], Saved] = {}
        self.inflight: set[tuple[str, str, str]] = set()
        self.requests: list[dict[str, Any]] = []
        self.requests_dropped = 0  # the oldest records let go past the cap: evidence lost
        self.faults: list[Fault] = []
        # every request a fault struck, kept when the fault is removed: what was served,
        # not what was armed
        self.faults_served: list[dict[str, Any]] = []
        self.endpoints: dict[str, Endpoint] = {}
        self.deliverer = Deliverer(self.settings, self.endpoints)
        self.platform_account_id = "acct_" + "standinplatform0"

    # objects -----------------------------------------------------------------

    def add(self, obj: Obj, **hidden: Any) -> Obj:
        self.objects[obj["id"]] = obj
        if hidden:
            self.hidden[obj["id"]] = dict(hidden)
        return obj

    def secret(self, ident: str) -> dict[str, Any]:
        return self.hidden.setdefault(ident, {})

    def find(self, ident: str | None, kind: str | None = None) -> Obj | None:
        if not ident:
            return None
        obj = self.objects.get(ident)
        if obj is None or (kind is not None and obj.get("object") != kind):
            return None
        return obj

    def get(
        self,
        ident: str,
        kind: str,
        *,
        label: str | None = None,
        param: str = "id",
        status: int = 404,
    ) -> Obj:
        obj = self.find(ident, kind)
        if obj is None:
            raise no_such(label or kind, ident, param=param, status=status)
        return obj

    def all(self, kind: str, where: Callable[[Obj], bool] | None = None) -> list[Obj]:
        """Objects of a kind, newest first (Stripe's list order)."""
        found = [o for o in self.objects.values() if o.get("object") == kind]
        if where is not None:
            found = [o for o in found if where(o)]
        found.reverse()
        return found

    def page(self, items: list[Obj], p: Params, url: str) -> Obj:
        limit = p.integer("limit", minimum=1)
        limit = 10 if limit is None else limit
        if limit > 100:
            raise invalid(
                "This value must be less than or equal to 100.",
                param="limit",
                code="parameter_invalid_integer",
            )
        after = p.string("starting_after")
        before = p.string("ending_before")
        ids = [o["id"] for o in items]
        if after:
            if after not in ids:
                raise invalid(
                    f"No such object: '{after}'", param="starting_after", code="resource_missing"
                )
            items = items[ids.index(after) + 1 :]
            window = items[:limit]
            has_more = len(items) > limit
        elif before:
            if before not in ids:
                raise invalid(
                    f"No such object: '{before}'", param="ending_before", code="resource_missing"
                )
            items = items[: ids.index(before)]
            window = items[-limit:]
            has_more = len(items) > limit
        else:
            window = items[:limit]
            has_more = len(items) > limit
        return {
            "object": "list",
            "data": [copy.deepcopy(o) for o in window],
            "has_more": has_more,
            "url": url,
        }

    def export(self, obj: Obj, expand: Iterable[str] = ()) -> Obj:
        out = copy.deepcopy(obj)
        for path in expand:
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node: Any, parts: list[str], path: str) -> None:
        if not parts or node is None:
            return
        if isinstance(node, list):
            for item in node:
                self._expand(item, parts, path)
            return
        if not isinstance(node, dict):
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        key, rest = parts[0], parts[1:]
        if key == "data" and node.get("object") == "list":
            self._expand(node["data"], rest, path)
            return
        if key == "refunds" and node.get("object") == "charge" and key not in node:
            refunds = self.all("refund", lambda r: r["charge"] == node["id"])
            node[key] = {
                "object": "list",
                "data": [copy.deepcopy(r) for r in refunds],
                "has_more": False,
                "url": f"/v1/charges/{node['id']}/refunds",
            }
        if key not in node:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        value = node[key]
        if isinstance(value, str):
            target = self.objects.get(value)
            if target is None:
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
            node[key] = value = copy.deepcopy(target)
        if value is None:
            return
        self._expand(value, rest, path)

    # events ------------------------------------------------------------------

    def emit(self, type_: str, obj: Obj, previous: dict[str, Any] | None = None) -> Obj:
        request_id, key = current_request.get()
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: Obj = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": current_version.get() or DEFAULT_API_VERSION,
            "created": now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": key},
            "type": type_,
        }
        self.add(event)
        self.deliverer.schedule(event)
        return event

    # reset -------------------------------------------------------------------

    async def reset(self, *, webhooks: bool = False) -> None:
        await self.deliverer.cancel_all()
        self.objects.clear()
        self.hidden.clear()
        self.idempotency.clear()
        self.inflight.clear()
        self.requests.clear()
        self.requests_dropped = 0
        self.faults.clear()
        self.faults_served.clear()
        self.deliverer.deliveries.clear()
        if webhooks:
            self.endpoints.clear()


def previous_attributes(before: Obj, after: Obj) -> dict[str, Any]:
    """Top-level fields that changed, with their old values (an event's previous_attributes)."""
    return {k: before.get(k) for k in after if k in before and before.get(k) != after.get(k)}
