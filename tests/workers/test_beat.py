"""Beat rides out a Redis restart: it keeps its schedule lock and goes on sending."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from devtools import launcher
from tests.services import free_port
from tests.wait import until


def test_beat_keeps_sending_after_redis_restarts(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "RIDEHAIL_REDIS_URL": url, "RIDEHAIL_BROKER_URL": url}
    server = launcher.start_redis(port, data_dir=tmp_path, persist=True)
    beat = launcher.start_beat(env=env, log=tmp_path / "beat.log")
    r = redis.Redis(port=port)
    try:
        # dispatch.sweep is due every second, on the default queue (no worker takes it)
        until(lambda: r.llen("default") >= 2, timeout=30)
        launcher.stop(server)  # SIGTERM: Redis saves and exits, as in a restart
        time.sleep(2)
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()[-2000:]
        server = launcher.start_redis(port, data_dir=tmp_path, persist=True)
        before = r.llen("default")
        until(lambda: r.llen("default") >= before + 3, timeout=30)
        assert beat.poll() is None
        log = (tmp_path / "beat.log").read_text()
        assert "Redis unreachable" in log
    finally:
        launcher.stop(beat)
        launcher.stop(server)
