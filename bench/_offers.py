"""Play the dispatcher for the bench: give each (ride, driver) pair read from stdin (JSON
`[[ride_id, driver_id], ...]`) a pending offer, so the driver can accept that ride.

With dispatch, `POST /rides/{id}/accept` needs an open offer, which the dispatch worker
makes for the nearest idle drivers; the bench runs no worker and wants a fixed pairing,
so it writes the offers itself. Prints `{"offers": N}`; N is 0 when the code has no
offers (a driver then accepts any requested ride).
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import timedelta

from infra import models
from infra.db import session_scope, utcnow

OFFER_TTL = timedelta(hours=1)


def main() -> None:
    pairs = json.load(sys.stdin)
    offer_model = getattr(models, "Offer", None)
    if offer_model is None:
        json.dump({"offers": 0}, sys.stdout)
        return
    now = utcnow()
    with session_scope() as session:
        for ride_id, driver_id in pairs:
            session.add(
                offer_model(
                    ride_id=uuid.UUID(ride_id),
                    driver_id=uuid.UUID(driver_id),
                    wave=1,
                    distance_m=0,
                    status="pending",
                    created_at=now,
                    expires_at=now + OFFER_TTL,
                )
            )
    json.dump({"offers": len(pairs)}, sys.stdout)


if __name__ == "__main__":
    main()
