"""Liveness and readiness: `/healthz` answers while the process runs, `/readyz` when the
database, Redis and the broker answer."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from infra.db import ping_database
from infra.redis import ping_broker
from infra.settings import get_settings

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = Field(description="Always `ok`: the process answers.")


class Readiness(BaseModel):
    """Whether the process can serve, with each check."""

    status: Literal["ready", "not_ready"] = Field(description="`ready` when every check is ok.")
    checks: dict[str, str] = Field(
        description="Each dependency (`database`, `redis`, `broker`): `ok`, or the error met."
    )


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up and serving requests (it checks nothing else: see
    `check_readiness`)."""
    return {"status": "ok"}


async def _check(name: str, coro: Any, results: dict[str, str]) -> None:
    try:
        await asyncio.wait_for(coro, timeout=2.0)
        results[name] = "ok"
    except Exception as exc:  # any failure means not ready
        results[name] = f"error: {type(exc).__name__}"


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "description": "A dependency did not answer: the same body, `not_ready`.",
            "model": Readiness,
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    """The database, Redis and the broker answer."""
    settings = get_settings()
    results: dict[str, str] = {}
    redis_client = request.app.state.redis
    await _check("database", asyncio.to_thread(ping_database), results)
    await _check("redis", redis_client.ping(), results)
    if settings.broker_url == settings.redis_url:
        await _check("broker", redis_client.ping(), results)
    else:
        await _check("broker", ping_broker(settings.broker_url), results)
    ready = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": results},
        status_code=200 if ready else 503,
    )
