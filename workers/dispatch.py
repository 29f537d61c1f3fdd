"""The dispatcher's tasks (`domain.usecases.dispatch`): a ride moved on, wave by wave,
and beat's sweep of the rides whose wave deadline has passed."""

from __future__ import annotations

import logging
import uuid

from domain.jobs import Job
from domain.usecases import dispatch
from domain.usecases.ports import UnitOfWork
from infra.metrics import DISPATCH_FIRST_OFFER
from infra.unit_of_work import make_context
from workers.base import transactional_task

log = logging.getLogger(__name__)

SWEEP_LEASE_S = 10.0  # a ride's move sent by the sweep is sent again after this at most


@transactional_task(Job.DISPATCH)
def advance(uow: UnitOfWork, ride_id: str) -> str:
    done = dispatch.advance(uow, make_context(), uuid.UUID(ride_id))
    if done.first_offer_after_s is not None:
        DISPATCH_FIRST_OFFER.observe(done.first_offer_after_s)
    log.info("dispatch: ride %s %s", ride_id, done.outcome)
    return done.outcome


@transactional_task(Job.SWEEP_DISPATCH, max_retries=0)
def sweep(uow: UnitOfWork) -> int:
    """Beat job: move on every ride whose wave deadline has passed."""
    return dispatch.move_due_rides(uow, make_context(), SWEEP_LEASE_S)
