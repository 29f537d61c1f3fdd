"""Throwaway PostgreSQL and Redis servers for the test run, on free ports.

PostgreSQL's `initdb` refuses to run as root, so as root it runs as the
`postgres` user in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("initdb")
    if exe:
        return os.path.dirname(exe)
    raise RuntimeError("PostgreSQL binaries not found (make test installs them)")


@dataclass
class Services:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    database_url: str = ""
    redis_url: str = ""
    redis_port: int = 0
    stripe_api_base: str = ""

    def start_postgres(self) -> None:
        bindir = _pg_bin()
        root = os.geteuid() == 0
        data = tempfile.mkdtemp(prefix="ridehail-pg-")
        self.dirs.append(data)
        prefix: list[str] = []
        if root:
            shutil.chown(data, "postgres", "postgres")
            os.chmod(data, 0o700)
            prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *prefix,
                f"{bindir}/initdb",
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    *prefix,
                    f"{bindir}/postgres",
                    "-D",
                    data,
                    "-p",
                    str(port),
                    "-k",
                    data,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(port)
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run(
                [
                    f"{bindir}/psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-c",
                    "CREATE DATABASE ridehail_test",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if ok.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections")
            time.sleep(0.2)
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/ridehail_test"

    def start_redis(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (make test installs it)")
        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_port(port)
        self.redis_port = port
        self.redis_url = f"redis://127.0.0.1:{port}/0"

    def start_stripe(self) -> None:
        """The offline Stripe stand-in (infra/stripe_standin), as `make run` starts it."""
        import sys

        port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "infra.stripe_standin",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(port)
        self.stripe_api_base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def start_api(
    env_extra: dict[str, str] | None = None, log_path: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A real uvicorn process of the API against the suite's PostgreSQL and Redis."""
    import sys
    import urllib.request

    port = free_port()
    env = {**os.environ, **(env_extra or {})}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "uvicorn"),
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start") from None
            time.sleep(0.1)
    return proc, base


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
