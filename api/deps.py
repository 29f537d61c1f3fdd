"""Dependencies: the request's unit of work (or its read-only views) and context, the
caller from the JWT, settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from api.errors import ApiError
from domain.access import Actor, Caller
from domain.usecases.context import Context
from domain.usecases.ports import Views
from infra.security import InvalidToken, decode_token_cached
from infra.settings import Settings, get_settings
from infra.unit_of_work import SqlUnitOfWork, make_context, read_views, sql_unit_of_work

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_uow() -> Iterator[SqlUnitOfWork]:
    """The request's one transaction: committed when the endpoint returns, else rolled back."""
    with sql_unit_of_work() as uow:
        yield uow


# scope="function": commit before the response is sent, so a failed commit is the answer
UowDep = Annotated[SqlUnitOfWork, Depends(get_uow, scope="function")]


def get_views() -> Iterator[Views]:
    """What a page only reads: one read-only session, no unit of work."""
    with read_views() as views:
        yield views


ViewsDep = Annotated[Views, Depends(get_views)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_context() -> Context:
    """The time of the request and the rules in force."""
    return make_context()


ContextDep = Annotated[Context, Depends(get_context)]

_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def _claims(token: str | None, kind: str) -> tuple[Caller, str | None]:
    """The caller a token names, and its scope; 401 if there is none or it is not valid."""
    if not token:
        raise ApiError(401, "not authenticated", "not_authenticated", _UNAUTHENTICATED)
    try:
        claims = decode_token_cached(token, kind)
        role = Actor(claims.role)
    except (InvalidToken, ValueError) as exc:
        raise ApiError(401, str(exc) or "invalid token", "invalid_token", _UNAUTHENTICATED) from exc
    return Caller(id=claims.subject, role=role), claims.scope


async def get_caller(token: Annotated[str | None, Depends(oauth2_scheme)]) -> Caller:
    """Auth is a JWT check only: no database on the hot path (async: no thread hop)."""
    return _claims(token, "access")[0]


CurrentCaller = Annotated[Caller, Depends(get_caller)]


def _role(*roles: Actor) -> Callable[[Caller], Awaitable[Caller]]:
    async def check(caller: CurrentCaller) -> Caller:
        if caller.role not in roles:
            raise ApiError(
                403,
                f"this needs the role {' or '.join(roles)}",
                "role_forbidden",
            )
        return caller

    check.roles = roles  # type: ignore[attr-defined]  # read by api.operations
    return check


CurrentPassenger = Annotated[Caller, Depends(_role(Actor.PASSENGER))]
CurrentDriver = Annotated[Caller, Depends(_role(Actor.DRIVER))]
CurrentAdmin = Annotated[Caller, Depends(_role(Actor.ADMIN))]
PassengerOrAdmin = Annotated[Caller, Depends(_role(Actor.PASSENGER, Actor.ADMIN))]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def stream_caller(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    scope: str | None,
) -> Caller:
    """SSE auth: an access token in the header, or `?access_token=` holding a short-lived
    stream token for exactly this stream (EventSource cannot set headers; an access token
    does not belong in a URL, where logs keep it). `scope=None` is the driver's own
    stream: the token must be scoped to its subject's."""
    if token:
        return _claims(token, "access")[0]
    caller, token_scope = _claims(request.query_params.get("access_token"), "stream")
    if token_scope != (scope or f"driver:{caller.id}"):
        raise ApiError(401, "this stream token is for another stream", "invalid_token")
    return caller


async def ping_driver(request: Request) -> Caller:
    """`CurrentDriver` in one step, for the ping endpoints (a dependency chain costs
    measurable time per request there)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    caller = _claims(token if scheme.lower() == "bearer" else None, "access")[0]
    if caller.role is not Actor.DRIVER:
        raise ApiError(403, "this needs the role driver", "role_forbidden")
    return caller


ping_driver.roles = (Actor.DRIVER,)  # type: ignore[attr-defined]
PingDriver = Annotated[Caller, Depends(ping_driver)]
