"""Beat job: drivers silent for longer than the stale window leave nearby search."""

from __future__ import annotations

from domain.jobs import Job
from domain.usecases import sweeps
from domain.usecases.ports import UnitOfWork
from infra.unit_of_work import make_context
from workers.base import transactional_task


@transactional_task(Job.SWEEP_STALE_POSITIONS, max_retries=0)
def sweep_stale(uow: UnitOfWork) -> int:
    return sweeps.forget_silent_drivers(uow, make_context())
