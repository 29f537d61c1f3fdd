"""Beat job: drivers silent for longer than the stale window leave nearby search."""

from __future__ import annotations

import time

from sqlmodel import Session

from domain.jobs import Job
from infra.live.positions import Positions
from infra.redis import get_sync_redis
from infra.settings import get_settings
from workers.base import transactional_task


@transactional_task(Job.SWEEP_STALE_POSITIONS, max_retries=0)
def sweep_stale(session: Session) -> int:
    return Positions(get_sync_redis()).sweep_stale(time.time() - get_settings().driver_stale_s)
