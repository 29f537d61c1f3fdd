"""Several API processes behind HAProxy (`RIDEHAIL_API_PROCESSES=2`), as `ridehail run`
starts them: requests spread over both, a stream opened through the proxy gets what a
request served by the other process changed, at once (nothing buffers it), a process
killed costs no request (the proxy sends it to the other) and is started again, and the
apps' kit follows rides through it with both processes killed mid-ride."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import register
from tests.sse import SseClient
from tests.wait import until

KIT = Path(__file__).resolve().parents[2] / "clients" / "kit"


def _pids(stack: dict[str, Any]) -> dict[str, int]:
    """The latest pid of each process the stack started."""
    log = (stack["data"] / "stack.log").read_text()
    return {name: int(pid) for name, pid in re.findall(r"started (\S+) \(pid (\d+)\)", log)}


def _served_by(http: httpx.Client, n: int = 8) -> list[str]:
    return [http.get("/healthz").headers.get("x-served-by", "") for _ in range(n)]


def test_requests_are_spread_over_the_processes(proxied_stack: dict[str, Any]) -> None:
    http = httpx.Client(base_url=proxied_stack["base"], timeout=10)
    # each process is in the proxy's rotation once its first health check passed (1 s)
    until(lambda: set(_served_by(http)) == {"api-1", "api-2"}, timeout=15)
    assert {"api-1", "api-2", "proxy"} <= set(_pids(proxied_stack))


def test_a_stream_through_the_proxy_gets_what_the_other_process_changed_at_once(
    proxied_stack: dict[str, Any],
) -> None:
    base = proxied_stack["base"]
    http = httpx.Client(base_url=base, timeout=10)
    driver = register(http, "driver", email=f"d-{uuid.uuid4().hex[:8]}@example.com")  # type: ignore[arg-type]
    passenger = register(http, "passenger", email=f"p-{uuid.uuid4().hex[:8]}@example.com")  # type: ignore[arg-type]
    assert http.post(
        "/api/v1/drivers/me/status", json={"status": "online"}, headers=driver.headers
    ).is_success
    at = (52.41, 13.21)
    fix = {"lat": at[0], "lng": at[1], "recorded_at": time.time()}
    assert http.post("/api/v1/drivers/me/location", json=fix, headers=driver.headers).is_success
    ride = http.post(
        "/api/v1/rides",
        json={"pickup": {"lat": at[0], "lng": at[1]}, "dropoff": {"lat": 52.42, "lng": 13.23},
              "payment": "cash"},
        headers=passenger.headers,
    )  # fmt: skip
    assert ride.status_code == 201, ride.text
    ride_id = ride.json()["id"]
    stream = SseClient(f"{base}/api/v1/rides/{ride_id}/events", passenger.headers).start()
    assert stream.status == 200
    assert stream.next(kind="status").data["status"] == "requested"
    until(lambda: http.get("/api/v1/drivers/me/offers", headers=driver.headers).json()["items"])
    # the accept is served by whichever process; the stream's may be the other: the event
    # crosses over Redis and through the proxy as it is written
    served = set()
    for action in ("accept", "arrive"):
        answer = http.post(f"/api/v1/rides/{ride_id}/{action}", headers=driver.headers)
        assert answer.status_code == 200, answer.text
        served.add(answer.headers["x-served-by"])
        sent = time.monotonic()
        seen = stream.next(timeout=10, kind="status")
        assert seen.data["status"] == {"accept": "accepted", "arrive": "arrived"}[action]
        assert time.monotonic() - sent < 5  # a buffering proxy would hold it back
    assert served <= {"api-1", "api-2"}


def test_a_killed_process_costs_no_request_and_is_started_again(
    proxied_stack: dict[str, Any],
) -> None:
    http = httpx.Client(base_url=proxied_stack["base"], timeout=10)
    before = _pids(proxied_stack)["api-1"]
    os.kill(before, signal.SIGKILL)
    answers = [http.get("/readyz") for _ in range(40)]
    assert [a.status_code for a in answers] == [200] * 40
    until(lambda: _pids(proxied_stack)["api-1"] != before, timeout=30)
    until(lambda: "api-1" in _served_by(http), timeout=30)  # back in the proxy's rotation
    assert (
        "ridehail: api-1 exited with -9; restarting"
        in (proxied_stack["data"] / "stack.log").read_text()
    )


@pytest.mark.timeout(300)
def test_the_kit_resumes_through_the_proxy_when_every_process_is_killed(
    proxied_stack: dict[str, Any],
) -> None:
    """The kit's own test of a ride followed across the API's death (by header and by
    stream token), here with both processes behind the proxy killed mid-ride."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "RIDEHAIL_BASE_URL": proxied_stack["base"],
        "RIDEHAIL_STACK_LOG": str(proxied_stack["data"] / "stack.log"),
    }
    built = subprocess.run(
        [str(KIT / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=KIT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    done = subprocess.run(
        ["node", "--test", "--test-name-pattern=the API killed mid-ride", "dist/test/"],
        cwd=KIT, capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    out = done.stdout + done.stderr
    print(out)
    assert done.returncode == 0, out
    assert re.search(r"^# pass 1$", out, re.M), out
    log = (proxied_stack["data"] / "stack.log").read_text()
    assert "ridehail: api-2 exited with -9; restarting" in log  # both were killed mid-ride
