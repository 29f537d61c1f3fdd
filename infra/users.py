"""User accounts: creation with a hashed password, lookup by email."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from domain.errors import Conflict
from infra.models import User
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
