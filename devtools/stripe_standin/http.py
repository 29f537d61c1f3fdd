"""What every API request goes through: decoding, recording, faults, auth, idempotency.

Middlewares, outermost first:
  outer        request id, decoded parameters, Stripe-shaped errors, the request record
  faults       injected 5xx/429/timeouts (`POST /_config/faults`), before anything else runs
  auth         `Authorization: Bearer sk_test_...` (or basic auth), or Stripe.js's
               `key=pk_test_...` parameter; 401 otherwise
  idempotency  `Idempotency-Key` per API key: replay, 400 on other parameters, 409 in flight
Injected faults sit outside the idempotency layer: like a failure in front of Stripe,
they are never stored under the key, so the SDK's retry with the same key goes through.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from localstripe.errors import UserError

from devtools.stripe_standin.errors import StripeError, api_error, invalid, rate_limited
from devtools.stripe_standin.params import Params, decode_body, decode_pairs
from devtools.stripe_standin.state import (
    DEFAULT_API_VERSION,
    Saved,
    State,
    current_request,
    current_version,
    new_id,
)

log = logging.getLogger("stripe_standin")

STATE = web.AppKey("stripe_standin_state", State)
_MAX_RECORDED = 200_000  # past it the oldest go, and `requests_dropped` says how many
_KEY_TTL_S = 24 * 3600  # Stripe prunes idempotency keys after at least 24 hours
_MAX_KEYS = 20000


@dataclass
class RequestInfo:
    request_id: str
    params: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    api_key: str = ""
    publishable: bool = False
    replayed: bool = False
    fault: str | None = None
    # a fault's delay before handling: spent inside the idempotency scope, so the key is
    # in flight meanwhile (a concurrent request with it is Stripe's 409)
    hold_s: float = 0.0


INFO = web.RequestKey("stripe_standin_info", RequestInfo)


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/v1/") or request.path == "/v1"


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=json.dumps(obj, indent=2).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(exc: StripeError) -> web.Response:
    return json_response(exc.body(), exc.status, exc.headers)


# routes ----------------------------------------------------------------------


@dataclass
class Ctx:
    state: State
    request: web.Request
    params: Params
    api_key: str
    publishable: bool

    def arg(self, name: str) -> str:
        return self.request.match_info[name]

    @property
    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}"


HandlerFn = Callable[[Ctx], Any]


@dataclass
class Route:
    method: str
    path: str
    fn: HandlerFn
    publishable: bool  # callable with a publishable key plus the object's client_secret


ROUTES: list[Route] = []


def route(method: str, path: str, *, publishable: bool = False) -> Callable[[HandlerFn], HandlerFn]:
    def register(fn: HandlerFn) -> HandlerFn:
        ROUTES.append(Route(method, path, fn, publishable))
        return fn

    return register


def handler_for(route_: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        info = request[INFO]
        params = Params(dict(info.params))
        if route_.publishable:
            secret = params.data.pop("client_secret", None)
            if info.publishable:
                target = state.find(request.match_info.get("id"))
                if target is not None and secret != target.get("client_secret"):
                    raise invalid(
                        "The client_secret provided does not match the client_secret "
                        f"associated with the {target['object']}.",
                        param="client_secret",
                    )
        elif info.publishable:
            raise StripeError(
                401,
                "This API call cannot be made with a publishable API key. Please use a secret "
                "API key. You can find a list of your API keys at "
                "https://dashboard.stripe.com/account/apikeys.",
            )
        ctx = Ctx(state, request, params, info.api_key, info.publishable)
        result = route_.fn(ctx)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(state.export(result, params.expand()))

    return handle


# middlewares -----------------------------------------------------------------


def _unrecognized(request: web.Request) -> StripeError:
    return StripeError(
        404,
        f"Unrecognized request URL ({request.method}: {request.path}). Please see "
        "https://stripe.com/docs or we can help at https://support.stripe.com/.",
    )


@web.middleware
async def outer_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    info = RequestInfo(
        request_id=new_id("req_", 14),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )
    request[INFO] = info
    tokens = (
        current_request.set((info.request_id, info.idempotency_key)),
        current_version.set(request.headers.get("Stripe-Version")),
    )
    api = is_api(request)
    if api and request.method == "OPTIONS":  # a browser's preflight: Stripe allows any origin
        return web.Response(status=204, headers=_cors(request))
    started = time.time()
    response: web.StreamResponse
    try:
        if api:
            body = await request.read() if request.method in ("POST", "PUT", "PATCH") else b""
            info.params = decode_body(body, request.content_type) if body else {}
            if request.query:
                info.params = {**decode_pairs(request.query.items()), **info.params}
        response = await handler(request)
    except StripeError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if api and exc.status in (404, 405):
            response = error_response(_unrecognized(request))
        else:
            raise
    except UserError as exc:  # from localstripe's own routes
        response = exc.to_response()
    except Exception:  # a stand-in bug: answer like Stripe's 500, keep serving
        log.exception("stand-in error on %s %s", request.method, request.path)
        response = error_response(api_error())
    finally:
        current_request.reset(tokens[0])
        current_version.reset(tokens[1])
    response.headers["Request-Id"] = info.request_id
    if api:
        response.headers.update(_cors(request))
        response.headers["Stripe-Version"] = (
            request.headers.get("Stripe-Version") or DEFAULT_API_VERSION
        )
        if info.idempotency_key and request.method == "POST":
            response.headers["Idempotency-Key"] = info.idempotency_key
        state.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "params": info.params,
                "idempotency_key": info.idempotency_key,
                "status": response.status,
                "at": started,
                "request_id": info.request_id,
                "api_key": _mask(info.api_key),
                "replayed": info.replayed,
                "fault": info.fault,
            }
        )
        if len(state.requests) > _MAX_RECORDED:
            state.requests_dropped += len(state.requests) - _MAX_RECORDED
            del state.requests[:-_MAX_RECORDED]
    return response


def _cors(request: web.Request) -> dict[str, str]:
    """What api.stripe.com answers a page's request with: Stripe.js calls it from any site."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type, Stripe-Version"
        ),
        "Access-Control-Max-Age": "300",
    }


def _mask(key: str) -> str:
    return f"{key[:8]}...{key[-4:]}" if len(key) > 12 else key


@web.middleware
async def fault_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not is_api(request):
        return await handler(request)
    state = request.app[STATE]
    fault = next((f for f in state.faults if f.matches(request.method, request.path)), None)
    if fault is None:
        return await handler(request)
    fault.count -= 1
    fault.hits += 1
    info = request[INFO]
    info.fault = fault.id
    state.faults_served.append(
        {
            "fault": fault.id,
            "label": fault.label,
            "method": request.method,
            "path": request.path,
            "status": fault.status,
            "delay_s": fault.delay_s,
            "at": time.time(),
        }
    )
    if fault.status is None:
        if fault.delay_s and not fault.after:
            info.hold_s = fault.delay_s
        response = await handler(request)
        if fault.delay_s and fault.after:
            await asyncio.sleep(fault.delay_s)
        return response
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    raise _fault_error(fault.status, fault.error, fault.should_retry)


def _fault_error(
    status: int, error: dict[str, Any] | None, should_retry: bool | None
) -> StripeError:
    if status == 429:
        exc = rate_limited()
    elif status >= 500:
        exc = api_error()
        exc.status = status
    else:
        exc = StripeError(status, "Injected fault.")
    if error:
        exc.message = str(error.get("message", exc.message))
        exc.type = str(error.get("type", exc.type))
        exc.code = error.get("code", exc.code)
        exc.param = error.get("param", exc.param)
        exc.extra = {
            k: v for k, v in error.items() if k not in ("message", "type", "code", "param")
        }
    if should_retry is not None:
        exc.headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
    return exc


_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_KEY_SHAPE = re.compile(r"^(sk|rk|pk)_(test|live)_[A-Za-z0-9_]+$")


def _api_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value).decode()
        except ValueError:
            return ""
        return decoded.split(":", 1)[0]
    return None


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not is_api(request):
        return await handler(request)
    key = _api_key(request)
    info = request[INFO]
    if key is None and isinstance(info.params.get("key"), str):
        # Stripe.js authenticates with the publishable key as a parameter (no header)
        key = str(info.params.pop("key"))
        if not key.startswith("pk_"):
            raise StripeError(401, _NO_KEY)
    headers = {"WWW-Authenticate": 'Basic realm="Stripe"'}
    if not key:
        raise StripeError(401, _NO_KEY, headers=headers)
    match = _KEY_SHAPE.match(key)
    if match is None:
        masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else key
        raise StripeError(401, f"Invalid API Key provided: {masked}", headers=headers)
    if match.group(2) == "live":
        raise StripeError(
            401,
            "The Stripe stand-in only accepts test mode keys (sk_test_...): never point it "
            "at live keys.",
            headers=headers,
        )
    info.api_key = key
    info.publishable = match.group(1) == "pk"
    return await handler(request)


@web.middleware
async def idempotency_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    info = request[INFO]
    key = info.idempotency_key
    if request.method != "POST" or not is_api(request) or not key:
        if info.hold_s:
            await asyncio.sleep(info.hold_s)
        return await handler(request)
    if len(key) > 255:
        raise invalid(
            "Idempotency keys can be up to 255 characters long.",
            param="Idempotency-Key",
        )
    state = request.app[STATE]
    scope = (info.api_key, request.headers.get("Stripe-Account", ""), key)
    canonical = json.dumps(info.params, sort_keys=True)
    saved = state.idempotency.get(scope)
    if saved is not None and time.time() - saved.at > _KEY_TTL_S:
        del state.idempotency[scope]
        saved = None
    if saved is not None:
        if (saved.method, saved.path) != (request.method, request.path):
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.method} {saved.path}' vs '{request.method} "
                f"{request.path}'). Try using a key other than '{key}' if you meant to execute "
                "a different request.",
                type_="idempotency_error",
            )
        if saved.params != canonical:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type_="idempotency_error",
            )
        info.replayed = True
        return web.Response(
            body=saved.body,
            status=saved.status,
            content_type="application/json",
            headers={"Idempotent-Replayed": "true", "Original-Request": saved.request_id},
        )
    if scope in state.inflight:
        raise StripeError(
            409,
            "There is currently another in-progress request using this Stripe-Idempotency-Key "
            "(that probably means you submitted twice, and the other request is still going "
            f"through): {key}. Please try again later.",
            type_="idempotency_error",
        )
    state.inflight.add(scope)
    try:
        if info.hold_s:
            await asyncio.sleep(info.hold_s)
        save: bool
        try:
            response = await handler(request)
            save = response.status < 400
        except StripeError as exc:
            response = error_response(exc)
            save = exc.saved
        except Exception:
            log.exception("stand-in error on %s %s", request.method, request.path)
            response = error_response(api_error())
            save = True
        body = getattr(response, "body", None)
        if save and isinstance(body, bytes):
            state.idempotency[scope] = Saved(
                request.method,
                request.path,
                canonical,
                response.status,
                body,
                info.request_id,
                time.time(),
            )
            if len(state.idempotency) > _MAX_KEYS:  # the oldest go first
                for old in list(state.idempotency)[: _MAX_KEYS // 10]:
                    del state.idempotency[old]
        return response
    finally:
        state.inflight.discard(scope)


MIDDLEWARES = [outer_middleware, fault_middleware, auth_middleware, idempotency_middleware]
