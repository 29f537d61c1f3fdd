"""Beat job: send again the outbox messages that never completed."""

from __future__ import annotations

from sqlmodel import Session

from domain.jobs import Job
from infra import jobs
from infra.settings import get_settings
from workers.base import transactional_task


@transactional_task(Job.REDISPATCH_OUTBOX, max_retries=0)
def redispatch(session: Session) -> int:
    jobs.prune_completed(session)
    return jobs.redispatch_stale(session, get_settings().outbox_redispatch_after_s)
