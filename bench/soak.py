"""A soak: `ridehail simulate` against one API process and one worker for a long while,
memory sampled every 10 s.

    .venv/bin/python bench/soak.py [--minutes 30 --drivers 100 --passengers 50]

Starts its own stack in a temp dir (Redis, the Stripe and FCM stand-ins, migrated SQLite
or `--database-url`, one uvicorn, one Celery worker on every queue, beat), runs the
simulator for `--minutes`, and prints every sample: the RSS of the API process and of the
worker (its pool processes included), Redis's used memory, the API's open connections.
At the end: each process's RSS after warm-up (the first sample past `--warmup-min`) and
at the end, the growth, Redis memory, errors by kind from the simulator and the
processes' logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import launcher  # noqa: E402


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    kids = [int(x) for x in out.split()]
    return [pid] + [p for k in kids for p in _tree(k)]


def _sockets(pid: int) -> int:
    try:
        return sum(
            1 for fd in Path(f"/proc/{pid}/fd").iterdir() if os.readlink(fd).startswith("socket:")
        )
    except OSError:
        return 0


def _redis_memory(port: int) -> int:
    import redis

    return int(redis.Redis(port=port).info("memory")["used_memory"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--drivers", type=int, default=100)
    ap.add_argument("--passengers", type=int, default=50)
    ap.add_argument("--every-s", type=float, default=10.0)
    ap.add_argument("--warmup-min", type=float, default=2.0)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="ridehail-soak-"))
    ports = {n: launcher.free_port() for n in ("api", "redis", "stripe", "fcm")}
    env = {
        **os.environ,
        "RIDEHAIL_DATA_DIR": str(data),
        "RIDEHAIL_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "RIDEHAIL_STRIPE_API_BASE": f"http://127.0.0.1:{ports['stripe']}",
        "RIDEHAIL_FCM_ENDPOINT": f"http://127.0.0.1:{ports['fcm']}",
        "RIDEHAIL_STRIPE_WEBHOOK_SECRET": "whsec_soak",
        "RIDEHAIL_LOG_FORMAT": "json",
    }
    if args.database_url:
        env["RIDEHAIL_DATABASE_URL"] = args.database_url
    procs: list[Any] = []
    try:
        procs.append(launcher.start_redis(ports["redis"], log=data / "redis.log"))
        procs.append(
            launcher.start_stripe_standin(
                ports["stripe"],
                webhook_url=f"http://127.0.0.1:{ports['api']}/api/v1/webhooks/stripe",
                webhook_secret="whsec_soak",
                log=data / "stripe.log",
            )
        )
        procs.append(launcher.start_fcm_standin(ports["fcm"], trust=data, log=data / "fcm.log"))
        launcher.run_migrations(env)
        api = launcher.start_api(ports["api"], env=env, log=data / "api.log")
        worker = launcher.start_worker(env=env, log=data / "worker.log", concurrency=2)
        beat = launcher.start_beat(env=env, log=data / "beat.log")
        procs += [api, worker, beat]
        base = f"http://127.0.0.1:{ports['api']}"
        sim_out = data / "simulate.json"
        sim = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "devtools.simulate"]
            + ["--base-url", base, "--drivers", str(args.drivers)]
            + ["--passengers", str(args.passengers), "--minutes", str(args.minutes)]
            + ["--stripe-base", env["RIDEHAIL_STRIPE_API_BASE"], "--json", "--no-progress"],
            cwd=ROOT,
            env=env,
            stdout=open(sim_out, "w"),  # noqa: SIM115
            stderr=subprocess.DEVNULL,
        )
        samples: list[dict[str, Any]] = []
        started = time.monotonic()
        print("t_s  api_rss_mb  worker_rss_mb  redis_mb  api_sockets")

        def sample() -> None:
            row = {
                "t": round(time.monotonic() - started),
                "api": _rss_kb(api.pid) / 1024,
                "worker": sum(_rss_kb(p) for p in _tree(worker.pid)) / 1024,
                "redis": _redis_memory(ports["redis"]) / 1e6,
                "sockets": _sockets(api.pid),
            }
            samples.append(row)
            print(
                f"{row['t']:4d}  {row['api']:10.1f}  {row['worker']:13.1f}  "
                f"{row['redis']:8.1f}  {row['sockets']:11d}",
                flush=True,
            )

        stop = threading.Event()
        while sim.poll() is None and not stop.wait(args.every_s):
            sample()
        sample()
        summary = json.loads(sim_out.read_text() or "{}")
    finally:
        # the product's processes first, then what they talk to (no reader error at the end)
        launcher.stop_all(procs[3:])
        launcher.stop_all(procs[:3])

    warm = next((s for s in samples if s["t"] >= args.warmup_min * 60), samples[0])
    end = samples[-1]
    errors = sum(
        1
        for name in ("api.log", "worker.log")
        for line in (data / name).read_text(errors="replace").splitlines()
        if '"level": "error"' in line
    )
    print("\n=== soak summary ===")
    print(f"duration: {end['t']} s, {args.drivers} drivers, {args.passengers} passengers")
    for key, label in (("api", "API RSS"), ("worker", "worker RSS (pool included)")):
        growth = end[key] - warm[key]
        print(
            f"{label}: {warm[key]:.1f} MB after warm-up (t={warm['t']} s), {end[key]:.1f} MB at "
            f"the end: {growth:+.1f} MB ({growth / max(warm[key], 1) * 100:+.1f} %)"
        )
    print(f"Redis used memory: {warm['redis']:.1f} MB -> {end['redis']:.1f} MB")
    print(f"API open sockets: {warm['sockets']} -> {end['sockets']}")
    print(f"rides: {summary.get('rides')}")
    print(f"simulator errors by kind: {summary.get('errors') or 'none'}")
    print(f"error lines in the API and worker logs: {errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
