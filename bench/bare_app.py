"""The reference points for the ping figures, served by the same uvicorn flags as the API
and loaded with byte-identical requests (the body and headers of a ping):

- `POST /c`: a FastAPI endpoint that returns a constant, so `pings/s ÷ bare req/s` is the
  share of the framework's ceiling that the ping path keeps;
- `POST /r`: the same plus one Redis round trip (GET) through a redis-py asyncio client
  configured as the API's, i.e. the ceiling of any endpoint that calls Redis once.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from fastapi import FastAPI

app = FastAPI()
_redis = aioredis.Redis.from_url(
    os.environ.get("RIDEHAIL_REDIS_URL", "redis://127.0.0.1:6379/0"),
    decode_responses=True,
    health_check_interval=30,
)


@app.post("/c", response_model=None)  # as unannotated: no response validation
async def c() -> dict[str, int]:
    return {"ok": 1}


@app.post("/r", response_model=None)
async def r() -> dict[str, int]:
    await _redis.get("bench:bare")
    return {"ok": 1}
