"""Accounts: register, the password token, its refresh, and who the caller is (`/users/me`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentCaller, SettingsDep, UowDep, client_ip
from api.errors import ApiError, error_responses
from api.schemas import RefreshIn, RegisterIn, TokenPair, UserPublic
from infra import users
from infra.models import User
from infra.security import InvalidToken, decode_token, issue_token
from infra.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["auth"])

_SELF_SERVICE_ROLES = {"passenger", "driver"}


def _pair(user: User, settings: Settings) -> TokenPair:
    return TokenPair(
        access_token=issue_token(user.id, user.role, "access", settings.access_token_ttl_s),
        expires_in=settings.access_token_ttl_s,
        refresh_token=issue_token(user.id, user.role, "refresh", settings.refresh_token_ttl_s),
    )


@router.post(
    "/auth/register",
    status_code=201,
    response_model=UserPublic,
    responses=error_responses(403, 409),
)
def register(body: RegisterIn, uow: UowDep) -> User:
    """A passenger or driver account (admins are made on the command line: 403 here). An
    email already registered is a 409. Sign in with `create_token` next."""
    if body.role not in _SELF_SERVICE_ROLES:
        raise ApiError(
            403,
            "role must be passenger or driver; admins are created on the command line",
            "role_not_allowed",
        )
    return uow.users.create(
        email=body.email, password=body.password, name=body.name, role=body.role
    )


@router.post("/auth/token", response_model=TokenPair, responses=error_responses(401, 429))
def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    uow: UowDep,
    settings: SettingsDep,
) -> TokenPair:
    """OAuth2's password grant (a form: `username` is the email): an access token (minutes)
    and a single-use refresh token (days). Too many attempts from one address or for one
    email are a 429 with `Retry-After`."""
    retry_after = users.sign_in_wait(
        form.username, client_ip(request), settings.login_attempts_per_minute
    )
    if retry_after:
        raise ApiError(
            429, "too many sign-in attempts", "rate_limited", {"Retry-After": str(retry_after)}
        )
    user = uow.users.authenticate(form.username, form.password)
    if user is None:
        raise ApiError(
            401, "wrong email or password", "invalid_credentials", {"WWW-Authenticate": "Bearer"}
        )
    return _pair(user, settings)


@router.post("/auth/refresh", response_model=TokenPair, responses=error_responses(401))
def refresh(body: RefreshIn, uow: UowDep, settings: SettingsDep) -> TokenPair:
    """A new pair for a refresh token, which is spent: using it twice is a 401. An app
    with several requests waiting on an expired token refreshes once and shares the
    answer."""
    try:
        claims = decode_token(body.refresh_token, "refresh")
    except InvalidToken as exc:
        raise ApiError(401, str(exc), "invalid_token") from exc
    if not uow.users.spend_refresh_token(claims.token_id, claims.expires_at):
        raise ApiError(401, "refresh token already used", "invalid_token")
    user = uow.users.get(claims.subject)
    if user is None:
        raise ApiError(401, "account no longer exists", "invalid_token")
    return _pair(user, settings)


@router.get("/users/me", response_model=UserPublic, tags=["users"], responses=error_responses(401))
def me(caller: CurrentCaller, uow: UowDep) -> User:
    """The account the access token belongs to: id, email, name and role."""
    user = uow.users.get(caller.id)
    if user is None:
        raise ApiError(401, "account no longer exists", "invalid_token")
    return user
