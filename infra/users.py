"""User accounts: creation with a hashed password, lookup by email, sign-in rate limits,
and the device keys of tracking apps that cannot send headers."""

from __future__ import annotations

import hashlib
import secrets
import time
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from domain.access import Actor
from domain.errors import Conflict, NotFound
from infra.db import after_commit, session_scope
from infra.live.keys import Keys
from infra.live.positions import Positions
from infra.models import User
from infra.ratelimit import hit
from infra.redis import get_sync_redis
from infra.security import hash_password, verify_password


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(session: Session, *, email: str, password: str, name: str, role: str) -> User:
    email = normalize_email(email)
    if session.exec(select(User.id).where(User.email == email)).first():
        raise Conflict("an account with this email exists", code="email_taken")
    user = User(email=email, name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict("an account with this email exists", code="email_taken") from exc
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.email == normalize_email(email))).first()
    ok = verify_password(password, user.password_hash if user else None)
    return user if ok else None


def get_user(session: Session, user_id: UUID) -> User | None:
    return session.get(User, user_id)


def sign_in_wait(email: str, client_ip: str, per_minute: int) -> int:
    """0 if this sign-in attempt may go ahead, else the seconds to wait."""
    return hit(get_sync_redis(), f"login:{normalize_email(email)}:{client_ip}", per_minute, 60)


def device_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_device_key(session: Session, driver_id: UUID) -> str:
    """A new device key for the driver (only its hash is kept); the old one stops working
    once the transaction commits."""
    user = session.get(User, driver_id)
    if user is None:
        raise NotFound("account no longer exists", code="user_not_found")
    key = secrets.token_urlsafe(24)
    old = user.device_key_hash
    user.device_key_hash = device_key_hash(key)
    session.add(user)
    new_hash, driver = user.device_key_hash, str(user.id)
    after_commit(session, lambda: Positions(get_sync_redis()).set_device_key(new_hash, driver, old))
    return key


def driver_of_device_key(key_hash: str) -> str | None:
    """The driver a device key belongs to, from SQL when Redis does not know it (then
    cached there for the next ping)."""
    with session_scope() as session:
        user_id = session.exec(
            select(User.id).where(User.device_key_hash == key_hash, User.role == Actor.DRIVER)
        ).first()
    if user_id is None:
        return None
    get_sync_redis().set(Keys.of(Keys.DEVICE_KEY, key_hash), str(user_id))
    return str(user_id)


SPENT_REFRESH = "auth:refresh:{}:spent"  # a refresh token's id, once used


class SqlUsers:
    """Accounts on the unit of work's session (what the auth routes ask for)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, *, email: str, password: str, name: str, role: str) -> User:
        return create_user(self.session, email=email, password=password, name=name, role=role)

    def authenticate(self, email: str, password: str) -> User | None:
        return authenticate(self.session, email, password)

    def spend_refresh_token(self, token_id: str | None, expires_at: float | None) -> bool:
        """A refresh token works once: True the first time its id is spent, False after
        (a replayed or stolen token). Remembered in Redis until the token would expire."""
        if not token_id:
            return False
        ttl = max(1, int((expires_at or time.time() + 60) - time.time()) + 1)
        return bool(get_sync_redis().set(SPENT_REFRESH.format(token_id), "1", nx=True, ex=ttl))

    def get(self, user_id: UUID) -> User | None:
        return get_user(self.session, user_id)

    def new_device_key(self, driver_id: UUID) -> str:
        return new_device_key(self.session, driver_id)
