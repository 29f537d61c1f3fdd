"""Rating aggregation (`domain.usecases.ratings.aggregate`): a user's summary recomputed
from all their ratings, never incremented, so a duplicate or a reordered job changes
nothing."""

from __future__ import annotations

import uuid

from domain.jobs import Job
from domain.usecases import ratings
from domain.usecases.ports import UnitOfWork
from infra.unit_of_work import make_context
from workers.base import transactional_task


@transactional_task(Job.AGGREGATE_RATINGS)
def aggregate(uow: UnitOfWork, user_id: str) -> str:
    result = ratings.aggregate(uow, make_context(), uuid.UUID(user_id))
    return f"{result.count} ratings, average {result.average}"
