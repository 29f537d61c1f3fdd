"""Ledger postings that follow ride events (`domain.usecases.ledger`)."""

from __future__ import annotations

import logging
import uuid

from domain.jobs import Job
from domain.usecases import ledger
from domain.usecases.ports import UnitOfWork
from infra.unit_of_work import make_context
from workers.base import transactional_task

log = logging.getLogger(__name__)


@transactional_task(Job.POST_LEDGER)
def post_ride(uow: UnitOfWork, ride_id: str) -> str:
    """Post the fare of a completed ride, or the fee of a cancelled / no-show one, once."""
    done = ledger.post_ride(uow, make_context(), uuid.UUID(ride_id))
    log.info("ledger: ride %s %s", ride_id, done)
    return done
