"""The migration history and the models agree, on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from infra.db import get_engine, make_engine, metadata
from infra.migrate import upgrade_head


def _diff(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def test_postgres_schema_matches_the_models() -> None:
    assert _diff(get_engine()) == []


def test_sqlite_default_migrates_from_scratch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_head(url)
    upgrade_head(url)  # idempotent
    engine = make_engine(url)
    try:
        assert _diff(engine) == []
    finally:
        engine.dispose()
