"""The names of live state's keys in Redis, defined here and nowhere else (the Lua
scripts get theirs from their KEYS, or from `infra.live.scripts`, built from the same
definitions).

Every key of one driver, one ride, one user or one geo cell carries that id as its Redis
Cluster hash tag (`drv:{<id>}:pos`), so each script touches one slot and the same code
runs on one Redis and on a cluster:
- `drv:{id}:pos`    hash: lat, lng, heading, speed, accuracy, ts (unix s), at (RFC 3339), cell
- `drv:{id}:state`  hash: status (online|offline), ride_id, ride_status
- `drv:{id}:uuids`  sorted set of the client uuids seen recently (dedupe)
- `drv:{id}:rl:{w}` the driver's ping counter of rate window `w`
- `drv:{id}:events` stream of the driver app's events (offer, offer_withdrawn, ride_status)
- `drv:{id}:told`   hash of the ride statuses already put on that stream (once each)
- `drv:{id}:offer`  the driver's open offer (JSON, expiring with it); `drv:{id}:offers` counts
- `drv:{id}:fence`  the time of the driver's last trip fix, written before a WAIT (on a
                    cluster: the replica's acknowledgment covers every write before it)
- `drv:{id}:path:<ride>` list of "ts,lat,lng,accuracy,received" of the driver's fixes on
                    that ride, from the acceptance on (the driver's slot: the fix and its
                    place on the path are one atomic write)
- `geo:{cell}`      GEO set of the online drivers last seen in that cell (`domain.geo`);
                    `seen:{cell}` their last ping time; `geo:cells` every cell in use
- `ride:{id}:meta`  hash: passenger_id, driver_id, status, pickup/dropoff, v (version)
- `ride:{id}:events` stream of `location` / `status` / `eta` events (MAXLEN ~)
- `ride:{id}:fixes` set of the tokens (uuid, or `t:<ts>`) of the fixes on its stream
- `ride:{id}:published` hash of the statuses already emitted (each is emitted once)
- `ride:{id}:eta_gate` at most one ETA event per interval
- `ride:{id}:arriving_told` the passenger was told the driver is about to arrive
- `admin:events`    stream of every status change and driver position
- `devkey:{sha256}` the driver a tracking app's device key belongs to
- `user:{id}:events` stream of what a user must be told of (a payment to fix)
Every stream entry is also published (SPUBLISH, sharded pub/sub: it stays on the stream's
shard) on `ev:<stream>` as "id\\x1fevent\\x1fdata", which is what each API process's
single subscriber fans out to its SSE clients.
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
    """The names of live state's keys. `{}` stands for the driver's, ride's, user's or
    cell's id, which `of` puts in braces: the key's hash tag."""

    POSITION = "drv:{}:pos"
    DRIVER_STATE = "drv:{}:state"
    UUIDS = "drv:{}:uuids"
    DRIVER_EVENTS = "drv:{}:events"
    DRIVER_OFFER = "drv:{}:offer"
    OFFER_STATS = "drv:{}:offers"
    DRIVER_TOLD = "drv:{}:told"
    FENCE = "drv:{}:fence"
    GEO = "geo:{}"
    SEEN = "seen:{}"
    CELLS = "geo:cells"
    RIDE_META = "ride:{}:meta"
    RIDE_EVENTS = "ride:{}:events"
    RIDE_FIXES = "ride:{}:fixes"
    RIDE_PUBLISHED = "ride:{}:published"
    ETA_GATE = "ride:{}:eta_gate"
    ARRIVING_TOLD = "ride:{}:arriving_told"
    ADMIN_EVENTS = "admin:events"
    DEVICE_KEY = "devkey:{}"
    USER_EVENTS = "user:{}:events"
    CHANNEL_PREFIX = "ev:"

    @staticmethod
    def rate(driver_id: str, window: int) -> str:
        return f"drv:{{{driver_id}}}:rl:{window}"

    @staticmethod
    def trip_path(driver_id: str, ride_id: str) -> str:
        return f"drv:{{{driver_id}}}:path:{ride_id}"

    @staticmethod
    def of(template: str, ident: object) -> str:
        return template.replace("{}", "{" + str(ident) + "}")


ADMIN_STREAM = Keys.ADMIN_EVENTS


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def channel(stream: str) -> str:
    """The sharded pub/sub channel of a stream: the stream's name (and so its hash tag)
    behind a prefix without braces, so both live on the same shard."""
    return Keys.CHANNEL_PREFIX + stream


def stream_of_channel(name: str) -> str:
    """The stream a pub/sub channel carries (the inverse of `channel`)."""
    prefix = Keys.CHANNEL_PREFIX
    return name[len(prefix) :] if name.startswith(prefix) else name


def user_stream(user_id: object) -> str:
    return Keys.of(Keys.USER_EVENTS, user_id)


def ride_stream(ride_id: str) -> str:
    return Keys.of(Keys.RIDE_EVENTS, ride_id)


def driver_stream(driver_id: str) -> str:
    return Keys.of(Keys.DRIVER_EVENTS, driver_id)


def maxlen_of(stream: str) -> int:
    return ADMIN_MAXLEN if stream == ADMIN_STREAM else STREAM_MAXLEN
