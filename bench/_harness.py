"""Shared plumbing of the benchmark scripts: processes, the bench stack, wrk, figures.

Every process started here runs in its own session (process group) and is stopped,
group and all, by `stop()`; `Stack` is a context manager that stops everything it
started, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench scripts run as files: make the checkout importable
    sys.path.insert(0, str(ROOT))

from devtools import launcher  # noqa: E402
from devtools.launcher import free_port, stop, uvicorn_flags, wait_http  # noqa: E402, F401

BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes (started by devtools/launcher.py) --------------------------------------------
def start(
    cmd: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    return launcher.start(cmd, env=env, log=log)


def wait_redis(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"redis on port {port} did not start")


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds user+system, RSS in KB) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return cpu, rss_kb(pid)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def gc_experiment_env(mode: str) -> dict[str, str]:
    """Environment that makes `_gcsite/sitecustomize.py` apply `mode` in the servers."""
    path = os.pathsep.join(p for p in (str(BENCH / "_gcsite"), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "RIDEHAIL_BENCH_GC": mode}


# --- the stack under test ------------------------------------------------------------------
@dataclass
class Stack:
    """Redis + migrated SQLite + one `uvicorn api.main:app` (+ optionally the bare app)."""

    extra_env: dict[str, str] = field(default_factory=dict)
    with_bare: bool = False
    tmp: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    redis_port: int = field(init=False)
    api_port: int = field(init=False)
    bare_port: int = field(init=False)
    redis: subprocess.Popen[bytes] | None = field(init=False, default=None)
    api: subprocess.Popen[bytes] | None = field(init=False, default=None)
    bare: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def bare_url(self) -> str:
        return f"http://127.0.0.1:{self.bare_port}"

    @property
    def metrics_dir(self) -> Path:
        return self.tmp / "metrics"

    @property
    def api_log(self) -> Path:
        return self.tmp / "api.log"

    def __enter__(self) -> Stack:
        self.tmp = Path(tempfile.mkdtemp(prefix="ridehail-bench-"))
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        self.redis_port = free_port()
        self.redis = launcher.start_redis(
            self.redis_port, data_dir=self.tmp, log=self.tmp / "redis.log"
        )
        wait_redis(self.redis_port)
        self.env = {
            **os.environ,
            "RIDEHAIL_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "RIDEHAIL_DATA_DIR": str(self.tmp),
            "RIDEHAIL_ENVIRONMENT": "development",
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            **self.extra_env,
        }
        self.metrics_dir.mkdir()
        launcher.run_migrations(self.env)
        self.api_port = free_port()
        self.api = launcher.start_api(
            self.api_port,
            env=self.env,
            log=self.api_log,
            extra=["--log-level", "warning", *uvicorn_flags()],
            wait=False,
        )
        if self.with_bare:
            self.bare_port = free_port()
            self.bare = start(
                [
                    str(VENV_BIN / "uvicorn"),
                    "bare_app:app",
                    "--app-dir",
                    str(BENCH),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.bare_port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    *uvicorn_flags(),
                ],
                env=self.env,
                log=self.tmp / "bare.log",
            )
            wait_http(self.bare_url + "/docs", proc=self.bare)
        wait_http(self.api_url + "/healthz", proc=self.api)

    def __exit__(self, *_exc: object) -> None:
        for proc in (self.bare, self.api, self.redis):
            stop(proc)
        problems = log_problems(self.api_log) if hasattr(self, "tmp") else []
        if problems:
            keep = Path(tempfile.gettempdir()) / f"{self.tmp.name}-api.log"
            shutil.copy(self.api_log, keep)
            print(f"\n!! server log had {len(problems)} error lines; full log kept at {keep}")
            for line in problems[:40]:
                print("   ", line)
        shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)

    def seed(self, drivers: int, passengers: int) -> dict[str, list[dict[str, str]]]:
        """Users inserted straight into the database (one shared Argon2 hash) and access
        tokens minted with the server's secret: see `_seed.py`."""
        out = subprocess.run(
            [PYTHON, str(BENCH / "_seed.py"), str(drivers), str(passengers)],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def make_offers(self, pairs: list[tuple[str, str]]) -> int:
        """Pending offers of each ride to its bench driver (see `_offers.py`)."""
        out = subprocess.run(
            [PYTHON, str(BENCH / "_offers.py")],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            input=json.dumps(pairs).encode(),
            timeout=300,
        )
        return int(json.loads(out.stdout)["offers"])

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout

    def commandstats(self) -> dict[str, int]:
        calls = {}
        for line in self.redis_cli("info", "commandstats").splitlines():
            m = re.match(r"cmdstat_([\w|]+):calls=(\d+)", line)
            if m:
                calls[m.group(1)] = int(m.group(2))
        return calls


def log_problems(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [
        line.rstrip()
        for line in path.read_text(errors="replace").splitlines()
        if re.search(r"Traceback|ERROR|Error|Exception|CRITICAL|WARNING", line)
    ]


def metrics(stack: Stack) -> dict[tuple[str, str, str], float]:
    """The server's request counters by (method, route, status), read from the files its
    processes count in (the API serves no /metrics: `ridehail metrics` does, on an
    internal port)."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(stack.metrics_dir))
    text = generate_latest(registry).decode()
    out: dict[tuple[str, str, str], float] = {}
    pattern = re.compile(
        r'^ridehail_http_requests_total\{method="([^"]+)",route="([^"]+)",status="(\d+)"\} (\S+)$'
    )
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            out[(m.group(1), m.group(2), m.group(3))] = float(m.group(4))
    return out


def status_delta(
    before: dict[tuple[str, str, str], float],
    after: dict[tuple[str, str, str], float],
    route: str,
) -> dict[str, int]:
    out = {}
    for key, value in after.items():
        if key[1] == route:
            d = int(value - before.get(key, 0))
            if d:
                out[key[2]] = d
    return out


# --- wrk -------------------------------------------------------------------------------------
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,'
    .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    wrk_cpu_s: float
    raw: dict[str, Any]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run_wrk(
    url: str, lua: Path, *, threads: int = 1, conns: int = 32, duration_s: int = 10
) -> WrkResult:
    out_path = lua.with_suffix(".out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                "wrk",
                f"-t{threads}",
                f"-c{conns}",
                f"-d{duration_s}s",
                "--timeout",
                "5s",
                "-s",
                str(lua),
                url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            stop(proc)
    text = out_path.read_text()
    m = re.search(r"WRKJSON (\{.*\})", text)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    raw = json.loads(m.group(1))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors={k: raw[k] for k in ("connect", "read", "write", "status", "timeout") if raw[k]},
        wrk_cpu_s=usage.ru_utime + usage.ru_stime,
        raw=raw,
    )


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine spent busy (not idle, not iowait) since boot."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@contextlib.contextmanager
def cpu_meter(**pids: int) -> Iterator[dict[str, float]]:
    """CPU seconds each named process used inside the block, and under `MACHINE` the
    whole machine's busy CPU seconds (to spot other load sharing the cores)."""
    before = {name: proc_stat(pid)[0] for name, pid in pids.items()}
    machine0 = machine_busy_s()
    used: dict[str, float] = {}
    yield used
    for name, pid in pids.items():
        used[name] = proc_stat(pid)[0] - before[name]
    used[MACHINE] = machine_busy_s() - machine0


MACHINE = "machine"


# --- figures ---------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, load average {load}"
