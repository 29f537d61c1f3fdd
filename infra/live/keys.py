"""The names of live state's keys in Redis, defined here and nowhere else (the Lua
scripts get theirs from `infra.live.scripts`, built from the same definitions):
- `drv:{id}:pos`    hash: lat, lng, heading, speed, accuracy, ts (unix s), at (RFC 3339)
- `drv:{id}:state`  hash: status (online|offline), ride_id, ride_status
- `drv:{id}:uuids`  sorted set of the client uuids seen recently (dedupe)
- `drv:{id}:rl:{w}` the driver's ping counter of rate window `w`
- `drv:{id}:events` stream of the driver app's events (offer, offer_withdrawn, ride_status)
- `drv:{id}:offer`  the driver's open offer (JSON, expiring with it); `drv:{id}:offers` counts
- `geo:drivers`     GEO set of online drivers; `drivers:seen` their last ping time
- `ride:{id}:meta`  hash: passenger_id, driver_id, status, pickup/dropoff, v (version)
- `ride:{id}:events` stream of `location` / `status` / `eta` events (MAXLEN ~)
- `ride:{id}:published` hash of the statuses already emitted (each is emitted once)
- `ride:{id}:path`  list of "ts,lat,lng,accuracy,received" while the trip is in progress
- `ride:{id}:eta_gate` at most one ETA event per interval
- `ride:{id}:arriving_told` the passenger was told the driver is about to arrive
- `admin:events`    stream of every status change and driver position
- `devkey:{sha256}` the driver a tracking app's device key belongs to
- `user:{id}:events` stream of what a user must be told of (a payment to fix)
Every stream entry is also PUBLISHed on `ev:<stream>` as "id\\x1fevent\\x1fdata", which is
what each API process's single subscriber fans out to its SSE clients.
"""

from __future__ import annotations

from datetime import UTC, datetime

STREAM_MAXLEN = 1000
ADMIN_MAXLEN = 10000
PATH_MAX = 20000
UUID_KEEP = 2000
SEP = "\x1f"
RIDE_FACTS_TTL_S = 7 * 86400


class Keys:
    """The names of live state's keys. `{}` stands for the driver's or the ride's id."""

    POSITION = "drv:{}:pos"
    DRIVER_STATE = "drv:{}:state"
    UUIDS = "drv:{}:uuids"
    DRIVER_EVENTS = "drv:{}:events"
    DRIVER_OFFER = "drv:{}:offer"
    OFFER_STATS = "drv:{}:offers"
    GEO = "geo:drivers"
    SEEN = "drivers:seen"
    RIDE_META = "ride:{}:meta"
    RIDE_EVENTS = "ride:{}:events"
    RIDE_PUBLISHED = "ride:{}:published"
    RIDE_PATH = "ride:{}:path"
    ETA_GATE = "ride:{}:eta_gate"
    ARRIVING_TOLD = "ride:{}:arriving_told"
    ADMIN_EVENTS = "admin:events"
    DEVICE_KEY = "devkey:{}"
    USER_EVENTS = "user:{}:events"
    CHANNEL = "ev:{}"

    @staticmethod
    def rate(driver_id: str, window: int) -> str:
        return f"drv:{driver_id}:rl:{window}"

    @staticmethod
    def of(template: str, ident: object) -> str:
        return template.replace("{}", str(ident))


ADMIN_STREAM = Keys.ADMIN_EVENTS


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def channel(stream: str) -> str:
    return Keys.of(Keys.CHANNEL, stream)


def stream_of_channel(name: str) -> str:
    """The stream a pub/sub channel carries (the inverse of `channel`)."""
    prefix = Keys.CHANNEL.partition("{}")[0]
    return name[len(prefix) :] if name.startswith(prefix) else name


def user_stream(user_id: object) -> str:
    return Keys.of(Keys.USER_EVENTS, user_id)


def ride_stream(ride_id: str) -> str:
    return Keys.of(Keys.RIDE_EVENTS, ride_id)


def driver_stream(driver_id: str) -> str:
    return Keys.of(Keys.DRIVER_EVENTS, driver_id)


def maxlen_of(stream: str) -> int:
    return ADMIN_MAXLEN if stream == ADMIN_STREAM else STREAM_MAXLEN
