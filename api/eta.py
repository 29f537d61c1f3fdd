"""What a driver's accepted fix may set off for the ride's passenger: an `eta` event on the
ride's stream (at most one per ride every `eta_interval_s`) and, once per ride, the
"your driver is arriving" push. The rules are `domain.trip`'s; this is their I/O."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Request

from api.live import facts_cache, live
from domain.jobs import Job
from domain.trip import LiveRules, arriving_soon, eta_toward
from infra.jobs import send_now
from infra.live.keys import ride_stream


async def maybe_emit_eta(
    request: Request, rules: LiveRules, ride_id: str, ride_status: str, pos: dict[str, Any]
) -> None:
    state = live(request)
    if not await state.rides.eta_due(ride_id, rules.eta_interval_s):
        return
    facts = await facts_cache(request).get(state, ride_id)
    if facts is None:
        return
    eta = eta_toward(
        rules, ride_status, pos["lat"], pos["lng"], pos.get("speed"), facts.pickup, facts.dropoff
    )
    await state.streams.emit(
        ride_stream(ride_id),
        "eta",
        {
            "ride_id": ride_id,
            "seconds": eta.seconds,
            "distance_m": eta.distance_m,
            "target": eta.target,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
    if arriving_soon(rules, ride_status, eta) and await state.rides.first_arriving(ride_id):
        # straight to the push worker: an ETA is not a committed state to put in an outbox.
        # If the broker is out of reach, the gate opens again and the next fix tries.
        try:
            await asyncio.to_thread(send_now, Job.NOTIFY_ARRIVING, ride_id=ride_id)
        except Exception:
            await state.rides.forget_arriving(ride_id)
            raise
