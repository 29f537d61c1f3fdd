"""Beat's scheduler: RedBeat (the schedule and a lock in Redis, so a second beat for high
availability waits instead of sending everything twice), made to ride out a Redis restart.

RedBeat as shipped ends beat on the first failed Redis call: the lock it extends on
every tick talks to Redis directly. Here a tick that cannot reach Redis waits a moment
and tries again, and a lock that lapsed meanwhile is taken again before anything is sent
(another beat may hold it now: then this one waits, as at start-up)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import LockError

log = logging.getLogger("ridehail.beat")

RETRY_S = 1.0


class Scheduler(RedBeatScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return float(super().tick(*args, **kwargs))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("beat: Redis unreachable (%s); trying again in %.0f s", exc, RETRY_S)
            return RETRY_S
        except LockError:
            log.warning("beat: the schedule lock lapsed while Redis was away; taking it again")
            try:
                self.lock.acquire(blocking=True, blocking_timeout=RETRY_S)
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            return RETRY_S

    def close(self) -> None:
        try:
            super().close()
        except (redis.ConnectionError, redis.TimeoutError, LockError) as exc:
            log.warning("beat: could not release the schedule lock (%s); it lapses", exc)
