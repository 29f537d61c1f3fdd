"""The one process launcher of the development tools: `ridehail run`, the tests and `bench/`.

Every process starts in its own session (process group), so `stop()` ends it with all of
its children (uvicorn's, celery's pool). Each service has one way to start it here, with
the options the callers differ on as parameters; nothing else in the repository spells out
a `redis-server`, `postgres`, uvicorn or celery command line.

PostgreSQL's `initdb` refuses to run as root; as root it runs as the `postgres` user in a
folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.routing import Queue

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
Proc = subprocess.Popen[bytes]


# --- plumbing ------------------------------------------------------------------------------
# Ports for the services we start are taken below Linux's ephemeral range (32768-60999 by
# default): a port the kernel handed out for "any free one" can be taken again, between our
# check and the service's bind, by any outgoing connection on the machine.
_PORTS = range(20000, 32000)
_GIVEN: set[int] = set()
_DRAW = random.Random()  # our own: the global one may be a test's (Hypothesis watches it)


def free_port() -> int:
    """A port nothing listens on, not handed out before by this process."""
    for _ in range(500):
        port = _DRAW.choice(_PORTS)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError("no free port found in 20000-32000")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(
    port: int, host: str = "127.0.0.1", timeout: float = 30.0, proc: Proc | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {host}:{port} opened")
        if answers(host, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on {host}:{port}")


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    """Until `url` answers with anything below 500."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: ours) with this checkout on PYTHONPATH, so a child finds `devtools`
    whatever its working directory (it keeps ours: relative settings such as the data
    directory mean the same in every process)."""
    out = dict(os.environ if env is None else env)
    paths = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        out["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    return out


def start(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    quiet: bool = True,
) -> Proc:
    """Start `argv` in its own session. Output goes to `log`, else nowhere when `quiet`,
    else to our own stdout."""
    out: int | None
    handle = None
    if log is not None:
        handle = open(log, "ab")  # noqa: SIM115 - the child keeps its own copy
        out = handle.fileno()
    else:
        out = subprocess.DEVNULL if quiet else None
    try:
        return subprocess.Popen(
            list(argv),
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
        )
    finally:
        if handle is not None:
            handle.close()


def stop(proc: Proc | None, grace_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """`sig` (SIGTERM) to the process group, then SIGKILL if still there after `grace_s`."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def stop_all(procs: Sequence[Proc | None], grace_s: float = 10.0) -> None:
    """Stop in reverse start order, all signalled first so they wind down together."""
    live = [p for p in reversed(procs) if p is not None and p.poll() is None]
    for proc in live:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in live:
        stop(proc, grace_s=max(0.1, deadline - time.monotonic()))


# --- Redis ---------------------------------------------------------------------------------
def start_redis(
    port: int,
    *,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    persist: bool = False,
    extra: Sequence[str] = (),
    log: Path | None = None,
) -> Proc:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make run / make test install it)")
    argv = [exe, "--bind", host, "--port", str(port), "--appendonly", "no"]
    argv += ["--save", "60 1" if persist else ""]
    if data_dir is not None:
        argv += ["--dir", str(data_dir.resolve())]
    proc = start([*argv, *extra], log=log)
    wait_port(port, host, proc=proc)
    return proc


def start_sentinel(
    port: int,
    master: tuple[str, int],
    *,
    name: str,
    data_dir: Path,
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    log: Path | None = None,
) -> Proc:
    """One Redis Sentinel watching `master` as `name` (Sentinel rewrites its own config
    file: each one gets its own under `data_dir`)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make run / make test install it)")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / f"sentinel-{port}.conf"
    config.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {data_dir.resolve()}\n"
        f"sentinel monitor {name} {master[0]} {master[1]} {quorum}\n"
        f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
        f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
        f"sentinel parallel-syncs {name} 1\n"
    )
    proc = start([exe, str(config), "--sentinel"], log=log)
    wait_port(port, proc=proc)
    return proc


@dataclass
class SentinelBroker:
    """The broker's Redis as production should run it, on one machine: a primary, a
    replica of it, and three sentinels (quorum 2) that promote the replica when the
    primary is gone for a second. `url` is what RIDEHAIL_BROKER_URL takes."""

    data_dir: Path
    name: str = "ridehail-broker"
    redis_ports: list[int] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return ";".join(f"sentinel://127.0.0.1:{p}" for p in self.sentinel_ports) + "/0"

    def start(self) -> SentinelBroker:
        self.redis_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        primary, replica = self.redis_ports
        for role, port, extra in (
            ("broker-primary", primary, []),
            ("broker-replica", replica, ["--replicaof", "127.0.0.1", str(primary)]),
        ):
            where = self.data_dir / role
            where.mkdir(parents=True, exist_ok=True)
            # the broker keeps its queues on disk too (appendonly), as production must
            self.procs[role] = start_redis(
                port, data_dir=where, extra=[*extra, "--appendonly", "yes"],
                log=self.data_dir / f"{role}.log",
            )  # fmt: skip
        for i, port in enumerate(self.sentinel_ports, start=1):
            self.procs[f"sentinel-{i}"] = start_sentinel(
                port, ("127.0.0.1", primary), name=self.name,
                data_dir=self.data_dir / "sentinels", log=self.data_dir / f"sentinel-{i}.log",
            )  # fmt: skip
        return self

    def primary(self) -> tuple[str, int] | None:
        """Where the sentinels say the primary is now."""
        import redis as redis_py

        for port in self.sentinel_ports:
            sentinel = redis_py.Redis(port=port, socket_timeout=1)
            try:
                found: Any = sentinel.sentinel_get_master_addr_by_name(self.name)
            except redis_py.RedisError:
                continue
            if found:
                host, where = found
                return (host.decode() if isinstance(host, bytes) else str(host)), int(where)
        return None

    def stop(self) -> None:
        stop_all(list(self.procs.values()), grace_s=5)


@dataclass
class RedisClusterNodes:
    """A Redis Cluster on one machine, as production runs it on several: `primaries`
    primaries, each with a replica, the 16,384 slots split between the primaries, a
    replica promoted when its primary is gone for a second (`cluster-node-timeout`).
    The rest of the cluster keeps serving its slots meanwhile
    (`cluster-require-full-coverage no`). `url` is what RIDEHAIL_REDIS_URL takes."""

    data_dir: Path
    primaries: int = 3
    ports: list[int] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)
    node_timeout_ms: int = 1000
    bus_ports: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Every node: a process started while one is down still finds the cluster."""
        return ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout: float = 30.0) -> RedisClusterNodes:
        if self.primaries < 3:
            raise ValueError("a Redis Cluster needs 3 primaries at least")
        self.ports = [free_port() for _ in range(2 * self.primaries)]
        for port in self.ports:
            where = self.data_dir / str(port)
            shutil.rmtree(where, ignore_errors=True)  # a new cluster each start
            where.mkdir(parents=True, exist_ok=True)
            # the bus on a free port of its own (by default port + 10000, which may be
            # anyone's), the same one again if the node is restarted
            self.bus_ports[port] = free_port()
            self._start_node(port)
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (make run / make test install it)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        self.wait_ok(timeout)
        self.wait_replicas_linked(timeout)
        return self

    def wait_replicas_linked(self, timeout: float = 30.0) -> None:
        """Until each replica has its primary's data and a live link to it: a replica that
        never synced does not take over when its primary dies."""
        import redis as redis_py

        deadline = time.monotonic() + timeout
        while True:
            linked = 0
            for port in self.ports:
                node = redis_py.Redis(port=port, socket_timeout=1, decode_responses=True)
                try:
                    info: Any = node.info("replication")
                    linked += info.get("role") == "slave" and info.get("master_link_status") == "up"
                except redis_py.RedisError:
                    pass
                finally:
                    node.close()
            if linked >= self.primaries:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster's replicas did not sync")
            time.sleep(0.1)

    def _start_node(self, port: int) -> None:
        self.procs[f"cluster-{port}"] = start_redis(
            port, data_dir=self.data_dir / str(port), log=self.data_dir / f"node-{port}.log",
            extra=["--cluster-enabled", "yes",
                   "--cluster-config-file", f"nodes-{port}.conf",
                   "--cluster-port", str(self.bus_ports[port]),
                   "--cluster-node-timeout", str(self.node_timeout_ms),
                   "--cluster-require-full-coverage", "no",
                   "--cluster-allow-reads-when-down", "no"],
        )  # fmt: skip

    def restart(self, port: int) -> None:
        """A node that died started again: it rejoins from its nodes file (as the replica
        of whoever took its slots meanwhile) and syncs from its primary."""
        self._start_node(port)

    def masters(self) -> list[int]:
        return sorted(port for port, role in self.roles().items() if role == "master")

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says the cluster is ok and knows its 2N nodes."""
        import redis as redis_py

        deadline = time.monotonic() + timeout
        while True:
            states = []
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    continue
                port = int(name.rsplit("-", 1)[1])
                node = redis_py.Redis(port=port, socket_timeout=1, decode_responses=True)
                try:
                    info: Any = node.cluster("INFO")
                    states.append(info.get("cluster_state") == "ok")
                except redis_py.RedisError:
                    states.append(False)
                finally:
                    node.close()
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.2)

    def roles(self) -> dict[int, str]:
        """Each live node's role now: `master` or `slave`."""
        import redis as redis_py

        out = {}
        for port in self.ports:
            if self.procs[f"cluster-{port}"].poll() is not None:
                continue
            node = redis_py.Redis(port=port, socket_timeout=1, decode_responses=True)
            try:
                out[port] = str(node.info("replication")["role"])
            except redis_py.RedisError:
                continue
            finally:
                node.close()
        return out

    def stop(self) -> None:
        stop_all(list(self.procs.values()), grace_s=5)


# --- PostgreSQL ----------------------------------------------------------------------------
def pg_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("initdb")
    if exe:
        return os.path.dirname(exe)
    raise RuntimeError("PostgreSQL binaries not found (make test installs them)")


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster with one database, fast and unsafe (fsync off)."""

    database: str = "ridehail"
    settings: Sequence[str] = ()  # extra `-c name=value`
    log: Path | None = None
    port: int = 0
    datadir: str = ""
    proc: Proc | None = None
    _prefix: list[str] = field(default_factory=list)
    _argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> Postgres:
        bindir = pg_bindir()
        self.datadir = tempfile.mkdtemp(prefix="ridehail-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
            os.chmod(self.datadir, 0o700)
            self._prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self._prefix, f"{bindir}/initdb", "-D", self.datadir, "-A", "trust"]
            + ["-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        self.port = free_port()
        conf = ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off"]
        conf += ["full_page_writes=off", "max_connections=200", *self.settings]
        argv = [*self._prefix, f"{bindir}/postgres", "-D", self.datadir, "-p", str(self.port)]
        argv += ["-k", self.datadir]
        for c in conf:
            argv += ["-c", c]
        self._argv = argv
        self.proc = start(argv, log=self.log)
        wait_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 30
        while True:
            created = subprocess.run(
                [f"{bindir}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
                + ["-c", f"CREATE DATABASE {self.database}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if created.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not accept connections")
            time.sleep(0.2)

    def halt(self) -> None:
        """Shut the server down ("fast": clients are cut off), keeping its data."""
        stop(self.proc, sig=signal.SIGINT)

    def resume(self) -> None:
        """Start the halted server again, same data and port."""
        self.proc = start(self._argv, log=self.log)
        wait_port(self.port, proc=self.proc, timeout=60)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM waits for every client
        stop(self.proc, sig=signal.SIGINT)
        if self.datadir:
            shutil.rmtree(self.datadir, ignore_errors=True)


# --- the stand-ins -------------------------------------------------------------------------
def start_stripe_standin(
    port: int,
    *,
    host: str = "127.0.0.1",
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    extra: Sequence[str] = (),
    log: Path | None = None,
) -> Proc:
    """The offline Stripe (`devtools/stripe_standin`)."""
    argv = [sys.executable, "-m", "devtools.stripe_standin", "--host", host, "--port", str(port)]
    if webhook_url and webhook_secret:
        argv += ["--webhook-url", webhook_url, "--webhook-secret", webhook_secret]
    proc = start([*argv, *extra], log=log)
    wait_port(port, host, proc=proc)
    return proc


def start_fcm_standin(
    port: int, *, trust: Path, host: str = "127.0.0.1", log: Path | None = None
) -> Proc:
    """The offline FCM (`devtools/fcm_standin`), trusting the service accounts in `trust`
    (the data folder, where the product keeps its offline account)."""
    argv = [sys.executable, "-m", "devtools.fcm_standin", "--host", host, "--port", str(port)]
    argv += ["--trust", str(trust)]
    proc = start(argv, log=log)
    wait_port(port, host, proc=proc)
    return proc


# --- the product's own processes -----------------------------------------------------------
def uvicorn_flags() -> list[str]:
    """The fast loop and parser when installed (uvicorn[standard] brings both)."""
    flags = []
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        flags += ["--loop", "uvloop"]
    with contextlib.suppress(ImportError):
        import httptools  # noqa: F401

        flags += ["--http", "httptools"]
    return flags


def start_api(
    port: int,
    *,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    log: Path | None = None,
    quiet: bool = True,
    extra: Sequence[str] = (),
    wait: bool = True,
) -> Proc:
    argv = [str(BIN / "uvicorn"), "api.main:app", "--host", host, "--port", str(port)]
    argv += ["--no-access-log", "--timeout-graceful-shutdown", "5", *extra]
    proc = start(argv, env=env, log=log, quiet=quiet)
    if wait:
        wait_http(f"http://{host}:{port}/healthz", proc=proc)
    return proc


def haproxy_config(
    host: str, port: int, backends: Sequence[tuple[str, int]], *, stats_port: int | None = None
) -> str:
    """HAProxy in front of the API processes: streams passed through as they are written
    (HAProxy buffers no response body; a stream lives while its keep-alives flow), the
    least busy process first (streams are long), a process that stops answering `/healthz`
    taken out within two seconds and a request it refused sent to another."""
    lines = [
        "global",  # maxconn: what the open-files limit allows (HAProxy works it out)
        "defaults",
        "  mode http",
        "  timeout connect 2s",
        "  timeout client 65s",  # an idle stream still gets a keep-alive every 15 s
        "  timeout server 65s",
        "  timeout http-keep-alive 30s",
        "  timeout queue 5s",
        "  option redispatch",
        "  retries 2",
        "  retry-on conn-failure empty-response",
        "frontend api",
        f"  bind {host}:{port}",
        "  option forwardfor",
        "  default_backend apis",
        "backend apis",
        "  balance leastconn",
        "  option httpchk GET /healthz",
        "  http-check expect status 200",
        "  default-server inter 1s fall 2 rise 1",
        # which process answered: for the tests and for whoever reads a trace
        "  http-response set-header X-Served-By %[srv_name]",
    ]
    lines += [f"  server {name} 127.0.0.1:{p} check" for name, p in backends]
    if stats_port is not None:
        lines += ["frontend stats", f"  bind 127.0.0.1:{stats_port}", "  stats enable",
                  "  stats uri /", "  stats refresh 5s"]  # fmt: skip
    return "\n".join(lines) + "\n"


def start_haproxy(config: Path, *, log: Path | None = None, quiet: bool = True) -> Proc:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise RuntimeError("haproxy is not installed (scripts/bootstrap.sh installs it)")
    check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused {config}: {check.stdout}{check.stderr}")
    return start([binary, "-db", "-f", str(config)], log=log, quiet=quiet)


QUEUES = ",".join(Queue)  # every queue


def start_worker(
    *,
    queues: str = QUEUES,
    concurrency: int = 2,
    name: str = "worker@%h",
    env: dict[str, str] | None = None,
    log: Path | None = None,
    quiet: bool = True,
    extra: Sequence[str] = (),
) -> Proc:
    argv = [str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", queues]
    argv += ["-c", str(concurrency), "-n", name, *extra]
    return start(argv, env=env, log=log, quiet=quiet)


def start_beat(
    *, env: dict[str, str] | None = None, log: Path | None = None, quiet: bool = True
) -> Proc:
    argv = [str(BIN / "celery"), "-A", "workers.app", "beat", "--loglevel", "INFO"]
    return start(argv, env=env, log=log, quiet=quiet)


def start_metrics(
    *, env: dict[str, str] | None = None, log: Path | None = None, quiet: bool = True
) -> Proc:
    """`ridehail metrics`: the host's Prometheus scrape on its internal port (settings)."""
    return start([str(BIN / "ridehail"), "metrics"], env=env, log=log, quiet=quiet)


def start_flower(
    port: int,
    *,
    host: str = "127.0.0.1",
    basic_auth: str = "",
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Proc:
    """Flower on `host:port`; with `basic_auth` ("user:password") every page but Flower's
    own `/metrics` and `/healthcheck` asks for it (passed in the environment, not argv,
    so it is not on the process list)."""
    argv = [str(BIN / "celery"), "-A", "workers.app", "flower", f"--port={port}"]
    child = dict(os.environ if env is None else env)
    if basic_auth:
        child["FLOWER_BASIC_AUTH"] = basic_auth
    return start([*argv, f"--address={host}"], env=child, log=log)


def run_migrations(env: dict[str, str]) -> None:
    """`ridehail migrate` against the database `env` names."""
    subprocess.run(
        [str(BIN / "ridehail"), "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
