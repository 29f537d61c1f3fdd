"""The synchronous SQL engine and its transactions, shared by API and workers.

One transaction per request and per task: `session_scope()` owns the commit.
Jobs enqueued inside it are sent to the broker only after the commit succeeds
and are dropped on rollback (their outbox rows roll back with them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel

from domain.errors import Unprocessable
from infra.settings import get_settings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_setup(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and upgrades locks late,
    # which deadlocks concurrent writers; take the write lock at BEGIN instead.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # a request that only reads (GET) needs no write lock: WAL lets it read beside
        # the writer instead of queueing behind every write
        conn.exec_driver_sql("BEGIN" if reading_only.get() else "BEGIN IMMEDIATE")


# Set by the API for GET and HEAD requests, which never write (SQLite only uses it).
reading_only: ContextVar[bool] = ContextVar("reading_only", default=False)


@event.listens_for(Session, "after_flush")
def _wrote(session: Any, _context: Any) -> None:
    session.info["flushed"] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Any, _transaction: Any) -> None:
    session.info.pop("flushed", None)


def end_reads(session: Session) -> None:
    """End a transaction that has only read so far, before a slow call to the outside
    (Stripe). Holding it open through an HTTP call keeps a pool connection busy, and on
    SQLite, where a transaction takes the database's write lock at BEGIN, stalls every
    writer. A transaction that wrote anything is left alone: it commits at its end."""
    if not session.in_transaction():
        return
    if session.new or session.dirty or session.deleted or session.info.get("flushed"):
        return
    session.commit()


def _unstorable_text(exc: StatementError) -> bool:
    """A value the database cannot hold as text: a NUL character (PostgreSQL refuses it),
    or a lone surrogate (not Unicode; JSON's \\ud800 escape lets one in). Bad input."""
    cause = exc.orig
    return isinstance(cause, UnicodeEncodeError) or "NUL (0x00)" in str(cause)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_setup(engine)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), class_=Session, expire_on_commit=False)


def newest_first(stmt: Any, model: Any, before: tuple[datetime, Any] | None, limit: int) -> Any:
    """`stmt` keyset-paginated newest first on (created_at, id), after the cursor `before`."""
    from sqlalchemy import literal, tuple_

    created, ident = model.created_at, model.id
    if before is not None:
        stmt = stmt.where(tuple_(created, ident) < tuple_(literal(before[0]), literal(before[1])))
    return stmt.order_by(created.desc(), ident.desc()).limit(limit)


def ping_database() -> None:
    """Raise unless the database answers a trivial query."""
    from sqlalchemy import text

    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


AfterCommit = Callable[[], None]


def after_commit(session: Session, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; never on rollback."""
    session.info.setdefault("after_commit", []).append(callback)


@contextmanager
def read_session() -> Iterator[Session]:
    """A session that only reads: rolled back at the end, never committed (what the
    views read is never written back)."""
    session = _session_factory()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises, its
    after-commit callbacks run once committed. A bare session: the use cases' unit of
    work (`infra.unit_of_work.SqlUnitOfWork`) is built on it."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except StatementError as exc:
        session.rollback()
        if _unstorable_text(exc):
            raise Unprocessable(
                "text must be Unicode without NUL characters", code="invalid_text"
            ) from exc
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
        session.close()
    # reached only when the commit succeeded
    for callback in callbacks:
        try:
            callback()
        except Exception:  # e.g. broker down: the outbox sweep sends it again
            log.exception("after-commit callback failed")
