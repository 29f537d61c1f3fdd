"""Password hashing (Argon2id) and signed JWTs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from infra.db import utcnow
from infra.settings import get_settings

_hasher = PasswordHasher()
_ALGORITHM = "HS256"
# Verifying a password for an unknown email costs the same as for a known one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: uuid.UUID
    role: str
    kind: str  # access | refresh | stream
    scope: str | None = None  # e.g. ride:<id> for stream tokens
    token_id: str | None = None  # jti: what a refresh token is spent by
    expires_at: float | None = None


def issue_token(
    subject: uuid.UUID, role: str, kind: str, ttl_s: int, scope: str | None = None
) -> str:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": str(subject),
        "role": role,
        "typ": kind,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": uuid.uuid4().hex,
    }
    if scope is not None:
        claims["scope"] = scope
    return jwt.encode(claims, get_settings().jwt_secret, algorithm=_ALGORITHM)


@lru_cache(maxsize=65536)
def _verified(token: str, secret: str) -> tuple[TokenClaims, float] | InvalidToken:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "sub", "typ"], "verify_exp": False},
        )
        subject = uuid.UUID(claims["sub"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return InvalidToken("invalid token")
    return (
        TokenClaims(subject, str(claims.get("role")), claims["typ"], claims.get("scope")),
        float(claims["exp"]),
    )


def decode_token_cached(token: str, expected_kind: str) -> TokenClaims:
    """`decode_token` for the hot path: the signature of a token is checked once, its
    expiry on every use (a token is immutable, so its verdict can be remembered)."""
    verdict = _verified(token, get_settings().jwt_secret)
    if isinstance(verdict, InvalidToken):
        raise verdict
    claims, exp = verdict
    if time.time() >= exp:
        raise InvalidToken("token expired")
    if claims.kind != expected_kind:
        raise InvalidToken(f"wrong kind of token ({expected_kind} expected)")
    return claims


def decode_token(token: str, expected_kind: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            get_settings().jwt_secret,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token") from exc
    if claims.get("typ") != expected_kind:
        raise InvalidToken(f"wrong kind of token ({expected_kind} expected)")
    try:
        subject = uuid.UUID(claims["sub"])
    except (ValueError, TypeError) as exc:
        raise InvalidToken("invalid token subject") from exc
    return TokenClaims(
        subject=subject,
        role=str(claims.get("role")),
        kind=claims["typ"],
        scope=claims.get("scope"),
        token_id=claims.get("jti"),
        expires_at=float(claims["exp"]),
    )
