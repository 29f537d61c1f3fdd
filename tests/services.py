"""Throwaway PostgreSQL, Redis and Stripe stand-in for the test run, on free ports, started
by the development tools' one launcher (`devtools/launcher.py`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools import launcher
from devtools.launcher import free_port, wait_port

__all__ = ["Services", "free_port", "start_api", "stop", "wait_port"]


@dataclass
class Services:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    postgres: launcher.Postgres | None = None
    database_url: str = ""
    redis_url: str = ""
    redis_port: int = 0
    stripe_api_base: str = ""
    fcm_endpoint: str = ""
    cluster: launcher.RedisClusterNodes | None = None

    def start_postgres(self) -> None:
        self.postgres = launcher.Postgres(database="ridehail_test").start()
        self.database_url = self.postgres.url

    def start_redis(self) -> None:
        self.redis_port = free_port()
        self.procs.append(launcher.start_redis(self.redis_port))
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis_cluster(self, data_dir: Path, primaries: int) -> str:
        """A local Redis Cluster (`primaries` primaries, a replica each); its URL."""
        self.cluster = launcher.RedisClusterNodes(data_dir, primaries=primaries).start()
        self.procs += list(self.cluster.procs.values())
        return self.cluster.url

    def start_stripe(self) -> None:
        """The offline Stripe stand-in, as `make run` starts it."""
        port = free_port()
        self.procs.append(launcher.start_stripe_standin(port))
        self.stripe_api_base = f"http://127.0.0.1:{port}"

    def start_fcm(self, trust: Path) -> None:
        """The offline FCM stand-in, as `make run` starts it, trusting the service accounts
        in `trust` (the data folder, where the product makes its offline account)."""
        port = free_port()
        self.procs.append(launcher.start_fcm_standin(port, trust=trust))
        self.fcm_endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        launcher.stop_all(self.procs)
        if self.postgres is not None:
            self.postgres.stop()


def start_api(
    env_extra: dict[str, str] | None = None, log_path: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A real uvicorn process of the API against the suite's PostgreSQL and Redis."""
    import os

    port = free_port()
    proc = launcher.start_api(
        port,
        env={**os.environ, **(env_extra or {})},
        log=Path(log_path) if log_path else None,
        extra=["--log-level", "warning"],
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes]) -> None:
    launcher.stop(proc)


@contextmanager
def running_api(env_extra: dict[str, str] | None = None) -> Iterator[str]:
    """A real uvicorn process of the API for the block; its base URL."""
    proc, base = start_api(env_extra)
    try:
        yield base
    finally:
        stop(proc)
