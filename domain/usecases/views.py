"""What is only read: the pages apps and ops show, over the `Views` port (one read-only
session, no unit of work, nothing collected at the end). Here are the views with a rule
of their own (who may ask, what an answer adds up to); a route whose answer is one query
as it is (a notification log, ratings received, statements, alerts) calls the port
itself. A view never decides a change: a change reads through the unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.access import Actor, Caller
from domain.errors import NotFound
from domain.ledger import Account, account, driver_position
from domain.ratings import RatedSide, Summary, summarize
from domain.usecases.context import Context
from domain.usecases.ports import Posting, Views

ACTIVE_ON_MAP = 500  # rides under way the ops map shows at most


def overview(views: Views, caller: Caller, since_h: int = 24) -> dict[str, Any]:
    """Rides and payments by status over the last `since_h` hours, the queues, the drivers
    online, the open low-rating alerts, and the rides under way (for the map). Admins
    only; anyone else is told there is no such page."""
    if caller.role is not Actor.ADMIN:
        raise NotFound("not found")
    return views.overview(since_h, active_limit=ACTIVE_ON_MAP)


@dataclass(frozen=True, slots=True)
class Earnings:
    """A driver's position per currency (`driver_position`) and the postings behind it,
    newest first; `next_before` is the cursor of the next page."""

    balances: dict[str, dict[str, int]]
    postings: list[Posting]
    next_before: int | None


def driver_earnings(views: Views, caller: Caller, before: int | None, limit: int) -> Earnings:
    accounts = [
        account(Account.DRIVER_PAYABLE, caller.id),
        account(Account.CASH_HELD_BY_DRIVER, caller.id),
    ]
    balances = views.balances_of(accounts)
    currencies = sorted({c for _a, c in balances})
    rows = views.postings(accounts, before, limit + 1)
    return Earnings(
        balances={c: driver_position(balances, caller.id, c) for c in currencies},
        postings=rows[:limit],
        next_before=rows[limit - 1].line_id if len(rows) > limit else None,
    )


def rating_summary(views: Views, ctx: Context, user_id: UUID) -> Summary:
    """The summary the worker last computed; a user nobody rated yet has the prior."""
    row = views.rating_summary(user_id)
    if row is None:
        return summarize([], RatedSide.PASSENGER, ctx.ratings)
    return Summary(
        average=row.average,
        count=row.count,
        distribution={int(k): v for k, v in row.distribution.items()},
        smoothed=row.smoothed,
        raw_average=row.raw_average,
    )
