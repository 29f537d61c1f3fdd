"""`ridehail run` (what `make run` starts): the whole stack on one machine, until Ctrl-C.

Starts each local service (Redis, the Stripe and FCM stand-ins) on the host and port its
setting names unless something already answers there, applies the migrations, then runs
the API, a worker, beat and Flower. Everything it started is stopped when it is stopped,
or when any of its processes dies, but for the API, which is started again (five times a
minute at most), as a supervisor would. A development tool: it lives outside the product's
packages, and `python -m devtools.stack` is what `ridehail run` executes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from devtools import launcher
from infra.migrate import upgrade_head
from infra.settings import Settings, get_settings

#: processes started again when they die (a crash of an API process is a restart, as under
#: a supervisor in production); any other process dying stops the stack
MAX_RESTARTS_PER_MINUTE = 5


def restarted(name: str) -> bool:
    return name == "api" or name.startswith("api-")


def outlived(name: str) -> bool:
    """Processes whose loss the stack rides out: the broker's Redis and its sentinels (the
    sentinels promote the replica), the cluster's nodes (a replica takes over its
    primary's slots): that is what a local failover is for."""
    return name.startswith(("broker-", "sentinel-", "cluster-"))


class Stack:
    def __init__(self, settings: Settings, *, log_files: bool = False) -> None:
        self.settings = settings
        self.log_files = log_files  # each process's output to logs/<name>.log, not ours
        self.procs: list[tuple[str, launcher.Proc]] = []
        self.logs = settings.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        # with several API processes each listens on a port of its own, HAProxy on api_port
        self.api_ports = (
            [launcher.free_port() for _ in range(settings.api_processes)]
            if settings.api_processes > 1
            else []
        )

    def _add(self, name: str, proc: launcher.Proc) -> None:
        self.procs.append((name, proc))
        print(f"ridehail: started {name} (pid {proc.pid})", flush=True)

    def stop(self) -> None:
        launcher.stop_all([p for _, p in self.procs], grace_s=15)
        print("ridehail: stopped", flush=True)

    def _unless_answering(
        self, name: str, url: str, default_port: int, start: Callable[[str, int], launcher.Proc]
    ) -> None:
        """Start `name` on the host and port `url` names, unless something answers there."""
        where = urlparse(url)
        host, port = where.hostname or "127.0.0.1", where.port or default_port
        if not launcher.answers(host, port):
            self._add(name, start(host, port))

    def broker(self) -> None:
        """With `RIDEHAIL_DEV_BROKER_SENTINEL`: the broker apart, behind Sentinel, and every
        process started after this reaches it through the sentinels."""
        if not self.settings.dev_broker_sentinel:
            return
        broker = launcher.SentinelBroker(self.settings.data_dir / "broker").start()
        for name, proc in broker.procs.items():
            self._add(name, proc)
        os.environ["RIDEHAIL_BROKER_URL"] = broker.url
        os.environ["RIDEHAIL_BROKER_SENTINEL_MASTER"] = broker.name
        get_settings.cache_clear()
        self.settings = get_settings()
        print(f"ridehail: broker at {broker.url} (master {broker.name})", flush=True)

    def live_state(self) -> None:
        """With `RIDEHAIL_DEV_REDIS_CLUSTER=N`: live state on a local cluster of N primaries
        with a replica each; the Redis started by `services` stays the broker's (unless
        the broker is behind Sentinel already)."""
        n = self.settings.dev_redis_cluster
        if not n:
            return
        cluster = launcher.RedisClusterNodes(self.settings.data_dir / "cluster", primaries=n)
        cluster.start()
        for name, proc in cluster.procs.items():
            self._add(name, proc)
        os.environ["RIDEHAIL_BROKER_URL"] = self.settings.broker_url
        os.environ["RIDEHAIL_REDIS_URL"] = cluster.url
        os.environ["RIDEHAIL_REDIS_CLUSTER"] = "true"
        get_settings.cache_clear()
        self.settings = get_settings()
        print(
            f"ridehail: live state on a Redis Cluster of {n} primaries at {cluster.url} "
            f"(nodes on ports {', '.join(map(str, cluster.ports))})",
            flush=True,
        )

    def services(self) -> None:
        s = self.settings
        self._unless_answering(
            "redis",
            s.redis_url,
            6379,
            lambda host, port: launcher.start_redis(
                port, host=host, data_dir=s.data_dir, persist=True, log=self.logs / "redis.log"
            ),
        )
        if not s.stripe_api_key:
            self._unless_answering(
                "stripe-standin",
                s.stripe_api_base,
                8420,
                lambda host, port: launcher.start_stripe_standin(
                    port,
                    host=host,
                    # signed events to our own webhook endpoint, with retries
                    webhook_url=f"http://{s.api_host}:{s.api_port}/api/v1/webhooks/stripe",
                    webhook_secret=s.stripe_webhook_secret or None,
                    log=self.logs / "stripe-standin.log",
                ),
            )
        if not s.fcm_credentials:
            self._unless_answering(
                "fcm-standin",
                s.fcm_endpoint,
                8421,
                lambda host, port: launcher.start_fcm_standin(
                    port, host=host, trust=s.data_dir, log=self.logs / "fcm-standin.log"
                ),
            )

    def starters(self) -> dict[str, Callable[[], launcher.Proc]]:
        """How each of the product's processes starts, by name (`ridehail run` starts them
        all; the chaos run also starts one again after killing it)."""
        from infra.routing import MAIN_QUEUES, PUSH_QUEUES

        s = self.settings

        def log(name: str) -> Path | None:
            return self.logs / f"{name}.log" if self.log_files else None

        apis: dict[str, Callable[[], launcher.Proc]] = {
            "api": lambda: launcher.start_api(
                s.api_port, host=s.api_host, quiet=False, wait=False, log=log("api")
            )
        }
        if self.api_ports:
            apis = {
                f"api-{i}": self._api_behind_proxy(f"api-{i}", port, log(f"api-{i}"))
                for i, port in enumerate(self.api_ports, start=1)
            }
            apis["proxy"] = self._proxy
        return {
            **apis,
            "worker": lambda: launcher.start_worker(
                queues=",".join(MAIN_QUEUES),
                quiet=False,
                extra=["-E", "--loglevel", "INFO"],
                log=log("worker"),
            ),
            # pushes on a worker of their own: a burst of them never delays the payments queue
            "push-worker": lambda: launcher.start_worker(
                queues=",".join(PUSH_QUEUES),
                name="push@%h",
                quiet=False,
                extra=["-E", "--loglevel", "INFO"],
                log=log("push-worker"),
            ),
            "beat": lambda: launcher.start_beat(quiet=False, log=log("beat")),
            "metrics": lambda: launcher.start_metrics(log=log("metrics")),
            "flower": lambda: launcher.start_flower(
                s.flower_port,
                basic_auth=f"{s.flower_user}:{s.flower_password}",
                log=self.logs / "flower.log",
            ),
        }

    def _api_behind_proxy(
        self, name: str, port: int, log: Path | None
    ) -> Callable[[], launcher.Proc]:
        return lambda: launcher.start_api(
            port,
            quiet=False,
            wait=False,
            log=log,
            # the client's address is the one the proxy says (X-Forwarded-For), from it only
            extra=["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"],
        )

    def _proxy(self) -> launcher.Proc:
        config = self.settings.data_dir / "haproxy.cfg"
        config.write_text(
            launcher.haproxy_config(
                self.settings.api_host,
                self.settings.api_port,
                [(f"api-{i}", port) for i, port in enumerate(self.api_ports, start=1)],
            )
        )
        return launcher.start_haproxy(config, log=self.logs / "haproxy.log")

    def app(self) -> None:
        for name, start in self.starters().items():
            self._add(name, start())


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
    # every process of the stack counts in files here; /metrics adds them up (a fresh
    # directory each run: figures of processes from an earlier run must not count)
    metrics_dir = settings.data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
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
        stack.broker()
        stack.live_state()
        upgrade_head()
        stack.app()
        ready_urls = [f"http://{settings.api_host}:{settings.api_port}/readyz"]
        ready_urls += [f"http://127.0.0.1:{port}/readyz" for port in stack.api_ports]
        if not all(_wait_ready(url, stack) for url in ready_urls):
            print("ridehail: the stack did not become ready", flush=True)
            return 1
        print(
            f"ridehail: ready in {time.monotonic() - started:.1f}s — "
            f"API http://{settings.api_host}:{settings.api_port} (docs at /docs"
            + (
                f"; {settings.api_processes} processes behind HAProxy), "
                if stack.api_ports
                else "), "
            )
            + f"Flower http://127.0.0.1:{settings.flower_port} (user {settings.flower_user}, "
            "password in RIDEHAIL_FLOWER_PASSWORD). Ctrl-C stops everything. "
            "Try `.venv/bin/ridehail simulate` in another terminal.",
            flush=True,
        )
        starters = stack.starters()
        restarts: list[float] = []
        while not stopping:
            for i, (name, proc) in enumerate(stack.procs):
                if proc.poll() is None or outlived(name):
                    continue
                recent = [t for t in restarts if t > time.monotonic() - 60]
                if restarted(name) and len(recent) < MAX_RESTARTS_PER_MINUTE:
                    # as a supervisor would: the API's clients reconnect and resume
                    print(f"ridehail: {name} exited with {proc.returncode}; restarting", flush=True)
                    restarts = [*recent, time.monotonic()]
                    stack.procs[i] = (name, starters[name]())
                    print(f"ridehail: started {name} (pid {stack.procs[i][1].pid})", flush=True)
                    continue
                print(f"ridehail: {name} exited with {proc.returncode}; stopping", flush=True)
                stopping = True
                code = 1
                break
            time.sleep(0.5)
    finally:
        stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(run())
