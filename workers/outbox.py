"""Beat job: send again the outbox jobs that never completed."""

from __future__ import annotations

from domain.jobs import Job
from domain.usecases import sweeps
from domain.usecases.ports import UnitOfWork
from infra.settings import get_settings
from workers.base import transactional_task


@transactional_task(Job.REDISPATCH_OUTBOX, max_retries=0)
def redispatch(uow: UnitOfWork) -> int:
    return sweeps.resend_stale_jobs(uow, get_settings().outbox_redispatch_after_s)
