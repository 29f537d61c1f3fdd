"""Rating aggregation: a user's summary recomputed from all their ratings, never
incremented, so a duplicate or a reordered job changes nothing."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from domain.jobs import Job
from infra.ratings import recompute
from infra.settings import get_settings
from workers.base import Retryable, transactional_task


@transactional_task(Job.AGGREGATE_RATINGS)
def aggregate(session: Session, user_id: str) -> str:
    result = recompute(session, uuid.UUID(user_id), get_settings().rating)
    if result is None:
        raise Retryable(f"user {user_id} not visible yet")
    return f"{result.count} ratings, average {result.average}"
