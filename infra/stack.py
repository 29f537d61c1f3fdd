"""`ridehail run`: the whole stack on one machine, until Ctrl-C / SIGTERM.

Starts each local service (Redis, the Stripe and FCM stand-ins) on the host and
port its setting names unless something already answers there, applies the
migrations, then runs the API, a worker, beat and Flower. Everything it started
is stopped when it is stopped, or when any of its processes dies.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from infra.migrate import upgrade_head
from infra.settings import Settings, get_settings

BIN = Path(sys.executable).parent


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start on {host}:{port}")


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.logs = settings.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], *, log: bool = False) -> None:
        out = open(self.logs / f"{name}.log", "ab") if log else None  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # our own signals, not the terminal's
            env=os.environ.copy(),
        )
        self.procs.append((name, proc))
        print(f"ridehail: started {name} (pid {proc.pid})", flush=True)

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"ridehail: {name} did not stop, killing it", flush=True)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        print("ridehail: stopped", flush=True)

    def services(self) -> None:
        s = self.settings
        redis = urlparse(s.redis_url)
        rhost, rport = redis.hostname or "127.0.0.1", redis.port or 6379
        if not _answers(rhost, rport):
            exe = shutil.which("redis-server")
            if exe is None:
                raise RuntimeError("redis-server is not installed (make run installs it)")
            self.start(
                "redis",
                [
                    exe,
                    "--bind",
                    rhost,
                    "--port",
                    str(rport),
                    "--dir",
                    str(s.data_dir.resolve()),
                    "--save",
                    "60 1",
                    "--appendonly",
                    "no",
                ],
                log=True,
            )
            _wait_port(rhost, rport, "redis")
        if not s.stripe_api_key:
            stripe = urlparse(s.stripe_api_base)
            shost, sport = stripe.hostname or "127.0.0.1", stripe.port or 8420
            if not _answers(shost, sport):
                argv = [
                    sys.executable,
                    "-m",
                    "infra.stripe_standin",
                    "--host",
                    shost,
                    "--port",
                    str(sport),
                ]
                if s.stripe_webhook_secret:
                    # signed events to our own webhook endpoint, with retries
                    argv += [
                        "--webhook-url",
                        f"http://{s.api_host}:{s.api_port}/api/v1/webhooks/stripe",
                        "--webhook-secret",
                        s.stripe_webhook_secret,
                    ]
                self.start("stripe-standin", argv, log=True)
                _wait_port(shost, sport, "stripe stand-in")
        if not s.fcm_credentials:
            fcm = urlparse(s.fcm_endpoint)
            fhost, fport = fcm.hostname or "127.0.0.1", fcm.port or 8421
            if not _answers(fhost, fport):
                self.start(
                    "fcm-standin",
                    [
                        sys.executable,
                        "-m",
                        "infra.fcm_standin",
                        "--host",
                        fhost,
                        "--port",
                        str(fport),
                    ],
                    log=True,
                )
                _wait_port(fhost, fport, "fcm stand-in")

    def app(self) -> None:
        s = self.settings
        celery = str(BIN / "celery")
        self.start(
            "api",
            [
                str(BIN / "uvicorn"),
                "api.main:app",
                "--host",
                s.api_host,
                "--port",
                str(s.api_port),
                "--no-access-log",
            ],
        )
        self.start(
            "worker",
            [
                celery,
                "-A",
                "workers.app",
                "worker",
                "-Q",
                "payments,notifications,default",
                "-c",
                "2",
                "-E",
                "--loglevel",
                "INFO",
                "-n",
                "worker@%h",
            ],
        )
        self.start("beat", [celery, "-A", "workers.app", "beat", "--loglevel", "INFO"])
        self.start(
            "flower",
            [
                celery,
                "-A",
                "workers.app",
                "flower",
                f"--port={s.flower_port}",
                "--address=127.0.0.1",
            ],
            log=True,
        )


def _wait_ready(url: str, stack: Stack, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in stack.procs:
            if proc.poll() is not None:
                print(f"ridehail: {name} exited with {proc.returncode}", flush=True)
                return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def run() -> int:
    settings = get_settings()
    if not settings.stripe_api_key and not settings.stripe_webhook_secret:
        # offline: the stand-in signs its webhooks with a secret made for this run, and
        # every process started here (the API among them) verifies with it
        os.environ["RIDEHAIL_STRIPE_WEBHOOK_SECRET"] = "whsec_offline_" + secrets.token_hex(16)
        get_settings.cache_clear()
        settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings)
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    code = 0
    try:
        stack.services()
        upgrade_head()
        stack.app()
        ready_url = f"http://{settings.api_host}:{settings.api_port}/readyz"
        if not _wait_ready(ready_url, stack):
            print("ridehail: the stack did not become ready", flush=True)
            return 1
        print(
            f"ridehail: ready in {time.monotonic() - started:.1f}s — "
            f"API http://{settings.api_host}:{settings.api_port} (docs at /docs), "
            f"Flower http://127.0.0.1:{settings.flower_port}. Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for name, proc in stack.procs:
                if proc.poll() is not None:
                    print(f"ridehail: {name} exited with {proc.returncode}; stopping", flush=True)
                    stopping = True
                    code = 1
                    break
            time.sleep(0.5)
    finally:
        stack.stop()
    return code
