"""The chaos run: `make run`'s stack under `ridehail simulate`, with faults injected at
random moments, then every money, ping and push promise checked against what the
stand-ins recorded, the ledger and Redis.

    .venv/bin/python -m devtools.chaos [--minutes 20 --faults-each 50 --drivers 100 ...]

It starts its own stack in a temp dir: PostgreSQL, Redis (persisted, as `make run`), the
Stripe stand-in (funds available at once, so payouts can be made) and the FCM stand-in,
then the product's processes exactly as `ridehail run` starts them (`Stack.starters`: the
API, the payments worker, the push worker, beat). The simulator drives rides (card and
cash, cancellations, ratings, drivers onboarded for payouts) and rides out outages as an
app does. Meanwhile lanes of faults run, each kind as often as `--faults-each`:

- processes: SIGKILL the payments worker, the push worker, the API (each started again);
  SIGKILL the payments worker in the middle of a capture, of a refund (the stand-in holds
  the answer of the call it made), the push worker in the middle of a push (FCM took it,
  the answer is held); restart Redis; stop PostgreSQL for 2-5 s; with `--redis-cluster N`
  (live state on a cluster of N primaries with replicas, the Redis above its broker) also
  SIGKILL a cluster primary (its replica promoted, the node started again as a replica);
  with `--api-processes N` the API is N processes behind HAProxy, one of them killed;
- Stripe: 500s, 429s, timeouts (the answer comes after the client gave up), 409s (the
  request held with its idempotency key in flight, the retry refused), and webhooks
  delivered again, twice each, shuffled;
- an admin refunding captured rides, partly and fully, some twice at once.

After the load, the day is closed and paid out while the payments worker is killed in
the middle of transfers. Faults stop, the sweeps settle what was left, and the checks
run (see `check`). It prints a summary and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devtools import launcher

WORKER_FAULTS = ("kill_worker", "kill_mid_capture", "kill_mid_refund")
PUSH_FAULTS = ("kill_push_worker", "kill_mid_push", "fcm_timeout")
INFRA_FAULTS = ("kill_api", "restart_redis", "stop_postgres")
STRIPE_FAULTS = ("stripe_500", "stripe_429", "stripe_timeout", "stripe_409", "webhooks_again")
TRANSFER_FAULT = "kill_mid_transfer"
CLUSTER_FAULT = "kill_redis_primary"
ALL_FAULTS = (*WORKER_FAULTS, *PUSH_FAULTS, *INFRA_FAULTS, *STRIPE_FAULTS, TRANSFER_FAULT)
STRIPE_KEY = "sk_test_chaos"
SIM_GRACE_S = 240  # the simulated apps' time for rides under way once the load ends
SIM_SETTLE_S = 60  # and for card payments to be final
ADMIN = ("chaos-admin@example.com", "chaos-admin-pass-1")
TIMEOUT_S = 3.0  # the product's Stripe and FCM timeouts in this run: a held answer outlasts it


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.data = Path(tempfile.mkdtemp(prefix="ridehail-chaos-"))
        self.ports = {
            n: launcher.free_port() for n in ("api", "redis", "stripe", "fcm", "flower", "metrics")
        }
        self.api = f"http://127.0.0.1:{self.ports['api']}"
        self.stripe = f"http://127.0.0.1:{self.ports['stripe']}"
        self.fcm = f"http://127.0.0.1:{self.ports['fcm']}"
        # faults done, each counted once it struck (a Stripe or FCM fault once the
        # stand-in served it); `served()` reads the final counts from the stand-ins' records
        self.faults: Counter[str] = Counter()
        # (start, end, kind) of each outage the run caused: what the apps saw then is excused
        self.outages: list[tuple[float, float, str]] = []
        # (when, process) of each SIGKILL this run dealt
        self.kills: list[tuple[float, str]] = []
        self.started_at = time.time()
        self.refunds_asked = 0
        self.stop_faults = threading.Event()
        self.finished = threading.Event()
        self.died: Counter[str] = Counter()
        self.lock = threading.Lock()  # one process restart at a time per process
        self.procs: dict[str, launcher.Proc] = {}
        self.services: dict[str, launcher.Proc] = {}
        self.pg = launcher.Postgres(log=self.data / "postgres.log")
        self.http = httpx.Client(timeout=30)
        self.admin_token = ""
        self.engine: Any = None
        self.sim: subprocess.Popen[bytes] | None = None
        self.cluster: launcher.RedisClusterNodes | None = None
        self.infra_faults = INFRA_FAULTS + ((CLUSTER_FAULT,) if args.redis_cluster else ())
        self.all_faults = ALL_FAULTS + ((CLUSTER_FAULT,) if args.redis_cluster else ())
        self.api_ports: list[int] = []

    # --- the stack ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        metrics = self.data / "metrics"
        metrics.mkdir(exist_ok=True)
        broker = f"redis://127.0.0.1:{self.ports['redis']}/0"
        on_cluster = (
            {"RIDEHAIL_REDIS_URL": self.cluster.url, "RIDEHAIL_REDIS_CLUSTER": "true"}
            if self.cluster is not None
            else {}
        )
        return {
            "RIDEHAIL_ENV": "development",
            "RIDEHAIL_DATA_DIR": str(self.data),
            "RIDEHAIL_DATABASE_URL": self.pg.url,
            "RIDEHAIL_REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "RIDEHAIL_STRIPE_API_BASE": self.stripe,
            "RIDEHAIL_FCM_ENDPOINT": self.fcm,
            "RIDEHAIL_API_HOST": "127.0.0.1",
            "RIDEHAIL_API_PORT": str(self.ports["api"]),
            "RIDEHAIL_FLOWER_PORT": str(self.ports["flower"]),
            "RIDEHAIL_METRICS_PORT": str(self.ports["metrics"]),
            "RIDEHAIL_PUBLIC_URL": self.api,
            "RIDEHAIL_STRIPE_WEBHOOK_SECRET": "whsec_chaos",
            "RIDEHAIL_STRIPE_TIMEOUT_S": str(TIMEOUT_S),
            "RIDEHAIL_FCM_TIMEOUT_S": str(TIMEOUT_S),
            "RIDEHAIL_LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            # the repairs come within the run, not an hour later
            "RIDEHAIL_SWEEP_INTERVAL_S": "5",
            "RIDEHAIL_SWEEP_PAYMENT_AFTER_S": "30",
            "RIDEHAIL_SWEEP_HOLD_ENDED_S": "30",
            "RIDEHAIL_SWEEP_WEBHOOK_AFTER_S": "20",
            "RIDEHAIL_PAYOUT_INTERVAL_S": "5",
            "RIDEHAIL_PAYOUT_RETRY_S": "5",
            "RIDEHAIL_BROKER_URL": broker,
            "RIDEHAIL_API_PROCESSES": str(self.args.api_processes),
            **on_cluster,
        }

    def start(self) -> None:
        self.pg.start()
        if self.args.redis_cluster:
            self.cluster = launcher.RedisClusterNodes(
                self.data / "cluster", primaries=self.args.redis_cluster
            ).start()
        os.environ.update(self.env())
        from infra.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        self.services["redis"] = self._start_redis()
        self.services["stripe"] = launcher.start_stripe_standin(
            self.ports["stripe"],
            webhook_url=f"{self.api}/api/v1/webhooks/stripe",
            webhook_secret="whsec_chaos",
            extra=["--funds-available-after", "0", "--webhook-backoff", "0.5"]
            + ["--log-level", "WARNING"],
            log=self.data / "stripe-standin.log",
        )
        self.services["fcm"] = launcher.start_fcm_standin(
            self.ports["fcm"], trust=self.data, log=self.data / "fcm-standin.log"
        )
        launcher.run_migrations(dict(os.environ))
        from devtools.stack import Stack

        stack = Stack(settings, log_files=True)
        self.api_ports = stack.api_ports
        self.starters = {k: v for k, v in stack.starters().items() if k != "flower"}
        for name, start in self.starters.items():
            self.procs[name] = start()
        front = self.procs.get("api") or self.procs["proxy"]
        launcher.wait_http(f"{self.api}/readyz", timeout=60, proc=front)
        subprocess.run(
            [str(launcher.BIN / "ridehail"), "create-admin", "--email", ADMIN[0]]
            + ["--password", ADMIN[1]],
            check=True,
            stdout=subprocess.DEVNULL,
            env=launcher.child_env(),
        )
        self.admin_login()
        from sqlalchemy import create_engine

        self.engine = create_engine(self.pg.url, pool_pre_ping=True)
        log(f"stack up in {self.data} (API {self.api})")

    def _start_redis(self) -> launcher.Proc:
        return launcher.start_redis(
            self.ports["redis"], data_dir=self.data, persist=True, log=self.data / "redis.log"
        )

    def stop(self) -> None:
        if self.sim is not None and self.sim.poll() is None:
            self.sim.kill()
        launcher.stop_all(list(self.procs.values()), grace_s=10)
        launcher.stop_all(list(self.services.values()), grace_s=10)
        if self.cluster is not None:
            self.cluster.stop()
        self.pg.stop()

    def admin_login(self) -> None:
        r = self.http.post(
            f"{self.api}/api/v1/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]}
        )
        r.raise_for_status()
        self.admin_token = r.json()["access_token"]

    def watchdog(self) -> None:
        """A process of ours that ended without being killed is a finding (a supervisor
        would start it again, and so does this)."""
        while not self.finished.wait(1.0):
            with self.lock:
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None:
                        self.died[name] += 1
                        log(f"{name} exited on its own ({proc.returncode}); starting it again")
                        self.procs[name] = self.starters[name]()

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        with self.lock:
            began = time.time()
            self.kills.append((began, name))
            launcher.stop(self.procs[name], grace_s=0.1, sig=sig)
            self.procs[name] = self.starters[name]()
            if name == "api" or name.startswith("api-"):
                # the process itself answering (behind the proxy, the other one does)
                own = (
                    f"http://127.0.0.1:{self.api_ports[int(name[4:]) - 1]}"
                    if name.startswith("api-")
                    else self.api
                )
                launcher.wait_http(f"{own}/healthz", timeout=60, proc=self.procs[name])
                self.outages.append((began, time.time(), "kill_api"))

    # --- database reads ----------------------------------------------------------------
    def rows(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        for attempt in range(60):
            try:
                with self.engine.connect() as conn:
                    return list(conn.execute(text(sql), params).all())
            except Exception:  # PostgreSQL stopped by a fault: a moment later
                if attempt == 59:
                    raise
                time.sleep(1)
        return []

    # --- fault lanes -------------------------------------------------------------------
    def lane(self, kinds: tuple[str, ...], span_s: float) -> None:
        """Faults of `kinds`, the least done first, a random gap apart, until told to stop
        or each was done `--faults-each` times. The gap is what is left of `span_s` shared
        among the faults still to do, so a lane whose faults take long (waiting for a
        capture to interrupt) keeps to the load instead of running past it."""
        deadline = time.monotonic() + span_s
        while not self.stop_faults.is_set():
            todo = [k for k in kinds if self.faults[k] < self.args.faults_each]
            if not todo:
                return
            left = sum(self.args.faults_each - self.faults[k] for k in todo)
            mean_gap = max(0.2, (deadline - time.monotonic()) / left)
            gap = (0.5 * mean_gap, 1.2 * mean_gap)
            kind = min(todo, key=lambda k: (self.faults[k], self.rng.random()))
            try:
                if getattr(self, kind)():
                    self.faults[kind] += 1
            except Exception as exc:  # a fault that failed to inject is not counted
                log(f"{kind} not injected: {type(exc).__name__}: {exc}")
            self.stop_faults.wait(self.rng.uniform(*gap))

    def kill_worker(self) -> bool:
        self.restart("worker")
        return True

    def kill_push_worker(self) -> bool:
        self.restart("push-worker")
        return True

    def kill_api(self) -> bool:
        apis = sorted(n for n in self.procs if n == "api" or n.startswith("api-"))
        self.restart(self.rng.choice(apis))
        return True

    def kill_redis_primary(self) -> bool:
        """SIGKILL one of the cluster's primaries: its replica takes its slots once the
        others see it gone (`cluster-node-timeout`); then the node is started again and
        rejoins as that replica's replica."""
        assert self.cluster is not None
        with self.lock:
            began = time.time()
            port = self.rng.choice(self.cluster.masters())
            self.kills.append((began, f"cluster-{port}"))
            launcher.stop(self.cluster.procs[f"cluster-{port}"], grace_s=0.1, sig=signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len(self.cluster.masters()) < self.cluster.primaries:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no replica took the slots of {port}")
                time.sleep(0.1)
            self.cluster.wait_ok()
            log(f"cluster primary {port} killed: slots served again {time.time() - began:.1f} s on")
            self.cluster.restart(port)
            self.cluster.wait_ok()
            self.outages.append((began, time.time(), CLUSTER_FAULT))
        return True

    def restart_redis(self) -> bool:
        with self.lock:
            began = time.time()
            launcher.stop(self.services["redis"], grace_s=10)  # SIGTERM: saved, then down
            time.sleep(self.rng.uniform(0.5, 2))
            self.services["redis"] = self._start_redis()
            self.outages.append((began, time.time(), "restart_redis"))
        return True

    def stop_postgres(self) -> bool:
        with self.lock:
            began = time.time()
            self.pg.halt()
            time.sleep(self.rng.uniform(2, 5))
            self.pg.resume()
            self.outages.append((began, time.time(), "stop_postgres"))
        return True

    def _stripe_fault(self, **fault: Any) -> dict[str, Any]:
        r = self.http.post(f"{self.stripe}/_config/faults", json=fault)
        r.raise_for_status()
        return dict(r.json())

    def _hit(self, fault_id: str, timeout: float) -> bool:
        """True once the fault held a request; else it is removed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop_faults.is_set():
            listed = self.http.get(f"{self.stripe}/_config/faults").json()
            mine = next((f for f in listed if f["id"] == fault_id), None)
            if mine is None or mine["hits"]:
                return mine is not None
            time.sleep(0.05)
        self.http.delete(f"{self.stripe}/_config/faults/{fault_id}")
        return False

    def _served(self, **fault: Any) -> bool:
        """Arm a Stripe fault and wait until the stand-in served it (else it is removed)."""
        made = self._stripe_fault(**fault)
        return self._hit(made["id"], timeout=30)

    def _kill_while_held(self, worker: str, label: str, **fault: Any) -> bool:
        made = self._stripe_fault(
            delay_s=8, after=True, count=1, method="POST", label=label, **fault
        )
        if not self._hit(made["id"], timeout=30):
            return False
        time.sleep(self.rng.uniform(0, 0.5))  # Stripe did it; our worker waits for the answer
        self.restart(worker)
        return True

    def kill_mid_capture(self) -> bool:
        return self._kill_while_held(
            "worker",
            "kill_mid_capture",
            path_prefix="/v1/payment_intents/",
            path_suffix="/capture",
        )

    def kill_mid_refund(self) -> bool:
        made = self._stripe_fault(
            delay_s=8,
            after=True,
            count=1,
            method="POST",
            path_prefix="/v1/refunds",
            label="kill_mid_refund",
        )
        deadline = time.monotonic() + 30
        # the admin asks for a refund (once there is a captured payment): its job meets
        # the held answer
        while not self.refund_one(concurrent=False, any_share=True):
            if time.monotonic() > deadline or self.stop_faults.is_set():
                break
            time.sleep(1)
        if not self._hit(made["id"], timeout=30):
            return False
        self.restart("worker")
        return True

    def _fcm_slow_answer(self, delay_s: float, label: str) -> bool:
        """Arm FCM to take the next push and answer `delay_s` late; True once a push was
        taken so (else the fault is cleared)."""
        fault = {"delay_s": delay_s, "count": 1, "label": label}
        self.http.post(f"{self.fcm}/_faults", json=fault).raise_for_status()
        deadline = time.monotonic() + 30
        while self.http.get(f"{self.fcm}/_faults").json():
            if time.monotonic() > deadline or self.stop_faults.is_set():
                self.http.delete(f"{self.fcm}/_faults")
                return False
            time.sleep(0.05)
        return True

    def kill_mid_push(self) -> bool:
        if not self._fcm_slow_answer(8, "kill_mid_push"):
            return False
        time.sleep(self.rng.uniform(0, 0.5))  # FCM took it; the worker waits for the answer
        self.restart("push-worker")
        return True

    def fcm_timeout(self) -> bool:
        """FCM takes a push and answers after the worker gave up: the push is `unknown`,
        never sent again (the check finds no device that got it twice)."""
        return self._fcm_slow_answer(TIMEOUT_S + 2, "fcm_timeout")

    def stripe_500(self) -> bool:
        return self._served(status=500, count=self.rng.randint(1, 3), label="stripe_500")

    def stripe_429(self) -> bool:
        return self._served(status=429, count=self.rng.randint(1, 3), label="stripe_429")

    def stripe_timeout(self) -> bool:
        # Stripe does the work; the answer comes after the client gave up (same key again)
        return self._served(
            delay_s=TIMEOUT_S + 1, after=True, count=1, method="POST", label="stripe_timeout"
        )

    def stripe_409(self) -> bool:
        # held with its key in flight past the client's timeout: the retry is Stripe's 409
        return self._served(
            delay_s=TIMEOUT_S + 3, after=False, count=1, method="POST", label="stripe_409"
        )

    def webhooks_again(self) -> bool:
        r = self.http.get(
            f"{self.stripe}/v1/events", params={"limit": 20}, auth=(STRIPE_KEY, "")
        ).json()
        ids = [e["id"] for e in r.get("data", [])]
        if not ids:
            return False
        self.rng.shuffle(ids)
        label = f"webhooks_again:{self.faults['webhooks_again'] + 1}"
        self.http.post(
            f"{self.stripe}/_config/events/resend",
            json={"events": ids, "times": 2, "label": label},
        ).raise_for_status()
        # counted once the stand-in delivered them again
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stop_faults.is_set():
            done = self.http.get(f"{self.stripe}/_config/webhook_deliveries").json()
            if any(d.get("label") == label and d["delivered"] for d in done):
                return True
            time.sleep(0.2)
        return False

    # --- the admin's refunds -------------------------------------------------------------
    def refund_one(self, concurrent: bool, any_share: bool = False) -> bool:
        # about one captured payment in ten is refunded (in part or in full): more would
        # leave nothing in the platform's balance for the drivers' payouts
        done, total = self.rows(
            "SELECT count(*) FILTER (WHERE amount_refunded > 0), count(*) FROM payments "
            "WHERE status = 'succeeded'"
        )[0]
        if done >= max(1, total // 10) and not any_share:
            return False
        found = self.rows(
            "SELECT id, amount_received - amount_refunded FROM payments "
            "WHERE status = 'succeeded' AND amount_refunded = 0 ORDER BY random() LIMIT 1"
        )
        if not found:
            return False
        payment, left = found[0]
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        url = f"{self.api}/api/v1/payments/{payment}/refunds"
        bodies: list[dict[str, Any]] = [{"reason": "chaos: full"}]
        if left > 100 and self.rng.random() < 0.5:
            bodies = [{"amount": self.rng.randint(50, left // 2), "reason": "chaos: part"}]
        if concurrent:
            bodies = bodies + [{"reason": "chaos: full, at the same time"}]

        def ask(body: dict[str, Any]) -> None:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.post(url, json=body, headers=headers, timeout=30)
                if r.status_code == 401:
                    self.admin_login()

        threads = [threading.Thread(target=ask, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.refunds_asked += len(bodies)
        return True

    def refunds_lane(self) -> None:
        while not self.stop_faults.wait(self.rng.uniform(1, 4)):
            with contextlib.suppress(Exception):
                self.refund_one(concurrent=self.rng.random() < 0.3)

    # --- the run -----------------------------------------------------------------------
    def simulate(self) -> subprocess.Popen[bytes]:
        a = self.args
        argv = [sys.executable, "-m", "devtools.simulate", "--base-url", self.api]
        argv += ["--drivers", str(a.drivers), "--passengers", str(a.passengers)]
        # the simulator runs up to the cap; the run ends its load earlier (SIGUSR1) once it
        # has done what it needs (see `run`)
        argv += ["--minutes", str(self.max_minutes), "--stripe-base", self.stripe]
        argv += ["--card-share", "0.6", "--cancel-share", "0.15", "--retry-s", "90"]
        argv += ["--payout-share", "1", "--grace-s", str(SIM_GRACE_S)]
        argv += ["--settle-s", str(SIM_SETTLE_S)]
        argv += ["--record", str(self.data / "record.json"), "--json", "--no-progress"]
        argv += ["--signup-concurrency", "8", "--radius-m", str(a.radius_m)]
        argv += ["--speed-ms", str(a.speed_ms), "--trip-m", str(a.trip_m)]
        if a.seed is not None:
            argv += ["--seed", str(a.seed)]
        self.sim = subprocess.Popen(
            argv,
            env=launcher.child_env(),
            stdout=open(self.data / "simulate.json", "wb"),  # noqa: SIM115
            stderr=open(self.data / "simulate.err", "wb"),  # noqa: SIM115
        )
        return self.sim

    @property
    def max_minutes(self) -> float:
        a = self.args
        return a.max_minutes if a.max_minutes else a.minutes * 3 + 5

    def load_done(self) -> list[str]:
        """What the load has yet to do before it may end: every fault served as often as
        asked, and `--until-completed` rides completed (a third of them by card). Empty
        once it is all done."""
        left = [
            f"{k} {self.faults[k]}/{self.args.faults_each}"
            for k in self.all_faults
            if k != TRANSFER_FAULT and self.faults[k] < self.args.faults_each
        ]
        want = self.args.until_completed
        if want:
            done, card = self.rows(
                "SELECT count(*), count(*) FILTER (WHERE payment = 'card') FROM rides "
                "WHERE status = 'completed'"
            )[0]
            if done < want or card < -(-want // 3):
                left.append(f"completed rides {done}/{want} ({card} by card)")
        return left

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        threading.Thread(target=self.watchdog, daemon=True).start()
        sim = self.simulate()
        # faults once the riders are signed up and riding
        while not self._riding() and sim.poll() is None:
            time.sleep(1)
        load_from = time.monotonic()
        # each lane spreads its faults over the load (`--minutes`): a worker killed every
        # few seconds spends its life starting, and the run would test nothing but that
        span = self.args.minutes * 60 * 0.9
        lanes = [
            threading.Thread(target=self.lane, args=(kinds, span), daemon=True)
            for kinds in (WORKER_FAULTS, PUSH_FAULTS, self.infra_faults, STRIPE_FAULTS)
        ]
        lanes.append(threading.Thread(target=self.refunds_lane, daemon=True))
        for t in lanes:
            t.start()
        # The load goes on for at least `--minutes`, and then until it has done what the
        # checks need (`load_done`): what the run proves follows from what it did, not
        # from the machine's speed or the draw. The simulator's own cap ends it otherwise,
        # and what was left undone is a violation.
        left = ["?"]
        # once the load ends the simulated apps have their grace, their settling and their
        # last reads; past that the simulator is stuck, which is a finding, not a wait
        tail_s = SIM_GRACE_S + SIM_SETTLE_S + 150
        give_up = load_from + self.max_minutes * 60 + tail_s
        stuck = False
        while sim.poll() is None:  # faults go on while rides under way finish
            if left and time.monotonic() - load_from >= self.args.minutes * 60:
                with contextlib.suppress(Exception):  # PostgreSQL may be stopped by a fault
                    left = self.load_done()
                if not left:
                    log("the load did what it needs: no new rides")
                    sim.send_signal(signal.SIGUSR1)
                    give_up = min(give_up, time.monotonic() + tail_s)
            if time.monotonic() > give_up:
                log("the simulator did not finish: stopped")
                stuck = True
                sim.kill()
                sim.wait()
                break
            time.sleep(1)
        left = self.load_done()
        self.stop_faults.set()
        for t in lanes:
            t.join()
        log(f"load over: faults {dict(self.faults)}")
        self.pay_out()
        self.quiesce()
        summary = self.check()
        self.finished.set()
        bad = summary["violations"].append
        for name, n in self.died.items():
            bad(f"{name} exited on its own {n} time(s)")
        if left:
            bad(f"the load reached its cap ({self.max_minutes} min) with {left} to do")
        if stuck:
            bad(f"the simulator had not finished {tail_s} s after the load ended")
        summary["simulator"] = json.loads((self.data / "simulate.json").read_text() or "{}")
        self.check_simulator(summary, sim.returncode)
        summary["faults"] = self.served()
        for kind, n in summary["faults"].items():
            if n < self.args.faults_each:
                bad(f"fault {kind} struck {n} time(s) of {self.args.faults_each}")
        summary["refunds_asked"] = self.refunds_asked
        summary["seconds"] = round(time.monotonic() - started)
        return summary

    def _riding(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.rows("SELECT 1 FROM rides LIMIT 1"))
        return False

    def pay_out(self) -> None:
        """Close every day the run touched (UTC: a run across midnight has two) and pay
        them out, killing the payments worker in the middle of transfers: every transfer is
        held a moment at the stand-in."""
        from workers.app import app as celery

        first = datetime.fromtimestamp(self.started_at, UTC).date()
        last = datetime.now(UTC).date()
        for n in range((last - first).days + 1):
            day = (first + timedelta(days=n)).isoformat()
            celery.send_task("payments.settle_day", kwargs={"period": day}, queue="payments")
        slow = self._stripe_fault(
            path_prefix="/v1/transfers",
            method="POST",
            delay_s=1.0,
            after=True,
            count=100_000,
            label=TRANSFER_FAULT,
        )
        deadline = time.monotonic() + self.args.payout_s
        seen = 0
        while time.monotonic() < deadline:
            open_ = self.rows(
                "SELECT count(*) FROM settlements WHERE payout_status IN ('pending', 'payable')"
            )[0][0]
            made = self.rows("SELECT count(*) FROM settlements")[0][0]
            if made and not open_ and self.faults[TRANSFER_FAULT] >= self.args.faults_each:
                break
            if made and not open_:
                break  # nothing left to interrupt
            listed = self.http.get(f"{self.stripe}/_config/faults").json()
            hits = next((f["hits"] for f in listed if f["id"] == slow["id"]), 0)
            if hits > seen and self.faults[TRANSFER_FAULT] < self.args.faults_each:
                seen = hits
                time.sleep(self.rng.uniform(0, 0.5))
                self.restart("worker")  # mid-transfer: Stripe made it, the answer is held
                self.faults[TRANSFER_FAULT] += 1
                continue
            time.sleep(0.05)
        self.http.delete(f"{self.stripe}/_config/faults/{slow['id']}")
        log(f"payouts: {self.faults[TRANSFER_FAULT]} kills mid-transfer")

    def quiesce(self) -> None:
        """Faults off; wait for the sweeps and retries to settle everything."""
        self.http.delete(f"{self.stripe}/_config/faults")
        self.http.delete(f"{self.fcm}/_faults")
        deadline = time.monotonic() + self.args.settle_s
        while True:
            busy = self.busy()
            waiting = one_int(
                self.rows(
                    "SELECT count(*) FROM settlements WHERE payout_status = 'payable' "
                    "AND payout_error = 'balance_insufficient'"
                )
            )
            busy["payouts_open"] -= waiting  # (checked against Stripe's balance in `check`)
            if not any(busy.values()) or time.monotonic() > deadline:
                log(f"settled: {busy}")
                return
            time.sleep(2)

    def busy(self) -> dict[str, int]:
        one = lambda sql: int(self.rows(sql)[0][0])  # noqa: E731
        return {
            "outbox": one("SELECT count(*) FROM outbox WHERE completed_at IS NULL"),
            "payments_pending": one(
                "SELECT count(*) FROM payments p JOIN rides r ON r.id = p.ride_id "
                "WHERE p.status = 'pending' OR (p.status = 'requires_capture' AND r.status "
                "IN ('completed', 'cancelled', 'no_show', 'expired'))"
            ),
            "refunds_pending": one("SELECT count(*) FROM refunds WHERE status = 'pending'"),
            "webhooks_unprocessed": one(
                "SELECT count(*) FROM webhook_events WHERE processed_at IS NULL"
            ),
            "notifications_queued": one(
                "SELECT count(*) FROM notifications WHERE status = 'queued'"
            ),
            "payouts_open": one(
                "SELECT count(*) FROM settlements WHERE payout_status IN ('pending', 'payable')"
            ),
            "rides_open": one(
                "SELECT count(*) FROM rides WHERE status IN "
                "('requested', 'accepted', 'arrived', 'in_progress')"
            ),
        }

    # --- what struck, and what the apps saw ----------------------------------------------
    def served(self) -> dict[str, int]:
        """Each kind of fault as often as it struck: Stripe's and FCM's from the stand-ins'
        own records of faults served (one per fault armed, however many requests it
        struck), webhooks delivered again from the stand-in's deliveries, kills in the
        middle of a call only where the call was held when the kill came; the process
        faults are done by this run itself."""
        stripe_served = self.http.get(f"{self.stripe}/_config/faults/served").json()
        by_label: dict[str, set[str]] = defaultdict(set)
        for f in stripe_served:
            by_label[f["label"] or ""].add(f["fault"])
        fcm_served = self.http.get(f"{self.fcm}/_faults/served").json()
        resent = {
            d["label"]
            for d in self.http.get(f"{self.stripe}/_config/webhook_deliveries").json()
            if d.get("label") and d["delivered"]
        }
        transfers_held = sum(1 for f in stripe_served if f["label"] == TRANSFER_FAULT)
        out = {k: self.faults[k] for k in self.all_faults}  # the process faults: done here
        for kind in ("stripe_500", "stripe_429", "stripe_timeout", "stripe_409"):
            out[kind] = len(by_label[kind])
        for kind in ("kill_mid_capture", "kill_mid_refund"):
            out[kind] = min(self.faults[kind], len(by_label[kind]))
        out["fcm_timeout"] = sum(1 for f in fcm_served if f["label"] == "fcm_timeout")
        out["kill_mid_push"] = min(
            self.faults["kill_mid_push"],
            sum(1 for f in fcm_served if f["label"] == "kill_mid_push"),
        )
        out["webhooks_again"] = len(resent)
        out[TRANSFER_FAULT] = min(self.faults[TRANSFER_FAULT], transfers_held)
        return out

    def record(self) -> dict[str, Any]:
        """What the simulator recorded (nothing, if it had to be stopped: then the checks
        that read it examine nothing, and say so)."""
        path = self.data / "record.json"
        empty: dict[str, Any] = {"rides": {}, "trip_pings": {}, "errors": []}
        return json.loads(path.read_text()) if path.exists() else empty

    #: how long after an outage the run caused the apps may still meet its effects (a
    #: retry's backoff, a pool reconnecting)
    OUTAGE_TAIL_S = 15.0

    def check_simulator(self, summary: dict[str, Any], returncode: int | None) -> None:
        """What the simulated apps saw: every error they met is a violation unless it came
        inside an outage this run caused (or its tail); no ride may be left unsettled."""
        bad = summary["violations"].append
        sim = summary["simulator"]
        if not sim:
            bad(f"the simulator printed no summary (exit {returncode})")
            return
        pay = sim["payments"]
        if pay["card_unsettled"]:
            bad(f"the apps saw {pay['card_unsettled']} card ride(s) never settled")
        if pay["cash_rides"] != pay["cash_settled"]:
            bad(f"the apps settled {pay['cash_settled']} of {pay['cash_rides']} cash rides")
        record = self.record()
        excused: Counter[str] = Counter()
        unexcused: Counter[str] = Counter()
        for at, kind in record["errors"]:
            inside = any(
                start - 1 <= at <= end + self.OUTAGE_TAIL_S for start, end, _ in self.outages
            )
            (excused if inside else unexcused)[kind] += 1
        for kind, n in unexcused.most_common():
            bad(f"the apps met {kind} {n} time(s) outside any outage the run caused")
        summary["app_errors"] = {"in_outages": dict(excused), "outside": dict(unexcused)}
        if returncode and not unexcused and pay["card_unsettled"] == 0:
            if pay["cash_rides"] == pay["cash_settled"] and not excused:
                bad(f"the simulator exited {returncode} with nothing to show why")

    # --- the checks ----------------------------------------------------------------------
    def stripe_list(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        after = None
        while True:
            q = {"limit": 100, **params}
            if after:
                q["starting_after"] = after
            page = self.http.get(f"{self.stripe}{path}", params=q, auth=(STRIPE_KEY, "")).json()
            yield from page["data"]
            if not page.get("has_more"):
                return
            after = page["data"][-1]["id"]

    def check(self) -> dict[str, Any]:
        v: list[str] = []
        bad = v.append
        rides = {
            str(r[0]): r
            for r in self.rows(
                "SELECT id, status, payment, fare_amount, fee_amount, passenger_id, driver_id "
                "FROM rides"
            )
        }
        intents = list(self.stripe_list("/v1/payment_intents"))
        by_ride: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for pi in intents:
            by_ride[pi["metadata"].get("ride_id", "")].append(pi)
        recorded = self.http.get(
            f"{self.stripe}/_config/requests", params={"path_prefix": "/v1/payment_intents/"}
        )
        if int(recorded.headers.get("Records-Dropped", "0")):
            bad(
                f"the Stripe stand-in's request record lost its oldest "
                f"{recorded.headers['Records-Dropped']} entries: the capture check is not whole"
            )
        captures = Counter(
            r["path"].split("/")[3]
            for r in recorded.json()
            if r["method"] == "POST"
            and r["path"].endswith("/capture")
            and r["status"] == 200
            and not r["replayed"]
        )
        # money: every capture once, at the fare or the fee, for a ride that was due it
        for pi in intents:
            if captures[pi["id"]] > 1:
                bad(f"{pi['id']} captured {captures[pi['id']]} times")
            if pi["status"] == "requires_capture":
                bad(f"{pi['id']} still held after the run ({pi['metadata']})")
        for ride_id, (_, status, payment, fare, fee, *_rest) in rides.items():
            received = sum(pi["amount_received"] for pi in by_ride.get(ride_id, []))
            if payment != "card":
                if by_ride.get(ride_id):
                    bad(f"cash ride {ride_id} has PaymentIntents")
                continue
            if status == "completed" and received != fare:
                bad(f"completed card ride {ride_id}: fare {fare}, captured {received}")
            elif status != "completed" and received not in (0, fee or 0):
                bad(f"{status} card ride {ride_id}: fee {fee}, captured {received}")
        strays = [pi["id"] for r, pis in by_ride.items() if r not in rides for pi in pis]
        if strays:
            bad(f"PaymentIntents for no ride of ours: {strays[:5]}")
        # refunds: never more than captured; ours agree with Stripe's
        stripe_refunds = [
            r for r in self.stripe_list("/v1/refunds") if r["status"] in ("succeeded", "pending")
        ]
        refunded: Counter[str] = Counter()
        for r in stripe_refunds:
            refunded[r["payment_intent"]] += r["amount"]
        for pi in intents:
            if refunded[pi["id"]] > pi["amount_received"]:
                bad(f"{pi['id']}: refunded {refunded[pi['id']]} > captured")
        ours = {
            str(r[0]): r[1]
            for r in self.rows(
                "SELECT stripe_refund_id, amount FROM refunds WHERE status = 'succeeded'"
            )
        }
        theirs = {r["id"]: r["amount"] for r in stripe_refunds if r["status"] == "succeeded"}
        if ours != theirs:
            bad(
                f"refunds differ: ours {len(ours)} ({sum(ours.values())}), Stripe's "
                f"{len(theirs)} ({sum(theirs.values())})"
            )
        # the ledger: balanced entries, each ride's balance, and Stripe's money
        lines = self.rows(
            "SELECT e.id, e.kind, e.ride_id, l.account, l.amount FROM journal_entries e "
            "JOIN ledger_lines l ON l.entry_id = e.id"
        )
        per_entry: Counter[int] = Counter()
        receivable: Counter[str] = Counter()
        fare_booked: Counter[str] = Counter()
        clearing = 0
        payouts_booked: Counter[str] = Counter()
        for entry, kind, ride, acct, amount in lines:
            per_entry[entry] += amount
            if acct.startswith("rider_receivable:") and ride:
                receivable[str(ride)] += amount
            if kind in ("ride_fare", "cancellation_fee", "no_show_fee") and acct.startswith(
                "rider_receivable:"
            ):
                fare_booked[str(ride)] += amount
            if acct == "stripe_clearing":
                clearing += amount
        for entry, total in per_entry.items():
            if total:
                bad(f"journal entry {entry} sums to {total}")
        for ride_id, (_, status, payment, fare, fee, *_rest) in rides.items():
            due = fare if status == "completed" else (fee or 0)
            if fare_booked[ride_id] != (due or 0):
                bad(f"ride {ride_id} ({status}): booked {fare_booked[ride_id]}, due {due}")
            if receivable[ride_id] and (payment == "card" or status == "completed"):
                # (a cash rider's cancellation fee is a debt no one collects by hand)
                bad(f"ride {ride_id} ({status}, {payment}): rider still owes {receivable[ride_id]}")
        transfers = list(self.stripe_list("/v1/transfers"))
        captured = sum(pi["amount_received"] for pi in intents)
        moved = sum(t["amount"] - t.get("amount_reversed", 0) for t in transfers)
        stripe_net = captured - sum(theirs.values()) - moved
        if clearing != stripe_net:
            bad(
                f"ledger's Stripe clearing {clearing} != Stripe's captured {captured} - "
                f"refunded {sum(theirs.values())} - transferred {moved} = {stripe_net}"
            )
        # payouts: each paid statement is one transfer of its amount, booked once
        for entry, kind, _ride, acct, amount in lines:
            if kind == "payout" and acct == "stripe_clearing":
                payouts_booked[str(entry)] += -amount
        by_statement: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in transfers:
            by_statement[t["metadata"].get("statement_id", "")].append(t)
        statements = self.rows(
            "SELECT id, payout_status, payout_amount, net, carried_in, payout_error "
            "FROM settlements"
        )
        waiting = 0
        # a statement may wait for funds only where Stripe really lacks them: the platform's
        # available balance below what the statement pays (refunds drew on it)
        balance = self.http.get(f"{self.stripe}/v1/balance", auth=(STRIPE_KEY, "")).json()
        available = sum(b["amount"] for b in balance.get("available", []))
        for sid, status, amount, net, carried_in, error in statements:
            made = by_statement.pop(str(sid), [])
            if status == "paid" and [t["amount"] for t in made] != [amount]:
                bad(f"statement {sid}: payout {amount}, transfers {[t['amount'] for t in made]}")
            if status != "paid" and made:
                bad(f"statement {sid} ({status}) has transfers")
            if status in ("pending", "payable") and error != "balance_insufficient":
                bad(f"statement {sid} still {status} ({error})")
            if status == "payable" and error == "balance_insufficient":
                waiting += 1
                if amount <= available:
                    bad(f"statement {sid} waits for {amount} though {available} is available")
            if status == "paid" and amount != net + carried_in:
                bad(f"statement {sid}: paid {amount}, net {net} + carried {carried_in}")
        if any(by_statement.values()):
            bad(f"transfers for no statement: {list(by_statement)[:5]}")
        if sum(payouts_booked.values()) != moved:
            bad(f"payouts booked {sum(payouts_booked.values())} != transferred {moved}")
        # pings: every one the server accepted during a trip is in that trip's path
        record = self.record()
        from infra.live.rides import LiveRides
        from infra.redis import get_sync_redis

        live = LiveRides(get_sync_redis())  # one Redis, or the cluster's client
        lost_pings = 0
        trip_pings = 0
        for ride_id, pings in record["trip_pings"].items():
            raw = live.trip_path(ride_id)
            path = [tuple(map(float, p.split(",")[:3])) for p in raw]
            for t, lat, lng in pings:
                trip_pings += 1
                if not any(
                    abs(pt - t) < 1.0 and abs(plat - lat) < 2e-6 and abs(plng - lng) < 2e-6
                    for pt, plat, plng in path
                ):
                    lost_pings += 1
                    if lost_pings <= 5:
                        bad(f"ride {ride_id}: accepted ping at {t} not in its path")
        if lost_pings > 5:
            bad(f"... {lost_pings} accepted trip pings missing from their paths in all")
        # pushes: at most once per device and notification; every ride event's push sent
        sent = [s for s in self.http.get(f"{self.fcm}/_requests").json() if s["status"] == 200]
        per = Counter(
            (s["message"]["token"], s["message"].get("data", {}).get("notification_id"))
            for s in sent
        )
        twice = [k for k, n in per.items() if n > 1]
        if twice:
            bad(f"{len(twice)} pushes sent more than once to a device, e.g. {twice[:3]}")
        devices: dict[str, list[str]] = defaultdict(list)
        for user, token in self.rows("SELECT user_id, token FROM devices"):
            devices[str(user)].append(token)
        ride_notes = self.rows(
            "SELECT id, user_id, kind FROM notifications WHERE ride_id IS NOT NULL"
        )
        notes_checked = len(ride_notes)
        unsent = [
            (str(nid), kind, token)
            for nid, user, kind in ride_notes
            for token in devices[str(user)]
            if per[(token, str(nid))] == 0
        ]
        lost_mid_send = 0
        if unsent:
            # At most once: a push worker killed between a delivery's claim (committed) and
            # FCM's receipt loses that push for good; its delivery stays `sending` and the
            # log says `unknown`. Excused only for a kill of the push worker this run dealt
            # within the send's time after the claim, and never more than one per kill.
            claims = {
                (str(r[0]), str(r[1])): (str(r[2]), r[3].timestamp(), str(r[4]))
                for r in self.rows(
                    "SELECT d.notification_id, d.token, d.status, d.updated_at, n.status "
                    "FROM deliveries d JOIN notifications n ON n.id = d.notification_id "
                    "WHERE d.notification_id::text = ANY(:ids)",
                    ids=[u[0] for u in unsent],
                )
            }
            push_kills = [at for at, name in self.kills if name == "push-worker"]
            unsent, lost_mid_send = lost_to_kills(unsent, claims, push_kills)
        if unsent:
            # what our side knows of each: the delivery's state (no row: never claimed;
            # `sending`: claimed and never settled), the log entry's, when it was made
            known = {
                str(r[0]): r[1:]
                for r in self.rows(
                    "SELECT n.id, n.status, n.created_at, string_agg(coalesce(d.status, '-') "
                    "|| '/' || coalesce(d.attempts, 0) || '/' || coalesce(d.error, ''), ' ') "
                    "FROM notifications n LEFT JOIN deliveries d ON d.notification_id = n.id "
                    "WHERE n.id::text = ANY(:ids) GROUP BY n.id, n.status, n.created_at",
                    ids=[u[0] for u in unsent],
                )
            }
            detail = [(nid, kind, *known.get(nid, ())) for nid, kind, _token in unsent[:10]]
            bad(f"{len(unsent)} ride event pushes never sent (delivery/attempts/error): {detail}")
        statuses = Counter(r[1] for r in rides.values())
        card_checked = sum(1 for r in rides.values() if r[2] == "card")
        examined = {
            "rides": len(rides),
            "card_rides": card_checked,
            "payment_intents": len(intents),
            "captures": sum(captures.values()),
            "refunds": len(stripe_refunds),
            "journal_entries": len(per_entry),
            "statements": len(statements),
            "transfers": len(transfers),
            "trip_pings": trip_pings,
            "pushes_sent": len(sent),
            "ride_event_notifications": notes_checked,
        }
        for what, n in examined.items():
            if n == 0:
                bad(f"the check of {what} examined nothing")
        busy = self.busy()
        for what, n in busy.items():
            if n and not (what == "payouts_open" and n == waiting):
                bad(f"left open at the end: {what} {n}")
        if busy["outbox"]:
            # which jobs, how often sent, when last, and why they stopped (if they did)
            rows = self.rows(
                "SELECT task, attempts, created_at, dispatched_at, failed_at, last_error "
                "FROM outbox WHERE completed_at IS NULL ORDER BY created_at LIMIT 10"
            )
            bad(f"outbox jobs never completed (task/attempts/created/sent/failed/error): {rows}")
        return {
            "violations": v,
            "examined": examined,
            "rides": dict(statuses),
            "card_rides": sum(1 for r in rides.values() if r[2] == "card"),
            "payment_intents": len(intents),
            "captured": captured,
            "refunds": len(theirs),
            "refunded": sum(theirs.values()),
            "transfers": len(transfers),
            "transferred": moved,
            "statements": len(statements),
            "statements_waiting_for_funds": waiting,
            "journal_entries": len(per_entry),
            "trip_pings_checked": trip_pings,
            "pushes_sent": len(sent),
            "pushes_lost_to_kills_mid_send": lost_mid_send,
            "busy_at_end": busy,
        }


def lost_to_kills(
    unsent: list[tuple[str, str, str]],
    claims: dict[tuple[str, str], tuple[str, float, str]],
    kills: list[float],
) -> tuple[list[tuple[str, str, str]], int]:
    """Split the pushes FCM never got (notification, kind, token) into those a kill of the
    push worker explains and the rest. Explained: the delivery was claimed (`sending`, the
    log entry `unknown`) at most the send's time before a kill, one push per kill."""
    used: set[float] = set()
    left, lost = [], 0
    for nid, kind, token in unsent:
        state, claimed_at, note_status = claims.get((nid, token), ("", 0.0, ""))
        window = (claimed_at - 0.5, claimed_at + TIMEOUT_S + 2)
        kill = next((k for k in kills if k not in used and window[0] <= k <= window[1]), None)
        if state == "sending" and note_status == "unknown" and kill is not None:
            used.add(kill)
            lost += 1
        else:
            left.append((nid, kind, token))
    return left, lost


def one_int(rows: list[Any]) -> int:
    return int(rows[0][0])


def render(s: dict[str, Any]) -> str:
    sim = s.get("simulator", {})
    lines = [
        f"chaos run: {s['seconds']} s; rides {sum(s['rides'].values())} {s['rides']}",
        f"  simulator  {sim.get('rides')}; pings {sim.get('pings')}",
        f"  faults     {s['faults']} (total {sum(s['faults'].values())})",
        f"  money      {s['payment_intents']} PaymentIntents for {s['card_rides']} card rides, "
        f"{s['captured']} captured; {s['refunds']} refunds ({s['refunded']}) of "
        f"{s['refunds_asked']} asked; {s['transfers']} transfers ({s['transferred']}) for "
        f"{s['statements']} statements ({s['statements_waiting_for_funds']} waiting for funds); "
        f"{s['journal_entries']} journal entries",
        f"  pings      {s['trip_pings_checked']} accepted trip pings checked against paths",
        f"  pushes     {s['pushes_sent']} sent; {s['pushes_lost_to_kills_mid_send']} lost to "
        "a kill between claim and FCM (at most once)",
        f"  left open  {s['busy_at_end']}",
        f"  app errors {s.get('app_errors')}",
        f"  examined   {s['examined']}",
        f"  violations {len(s['violations'])}",
    ]
    lines += [f"    - {x}" for x in s["violations"][:40]]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="load with faults, at least")
    p.add_argument(
        "--until-completed",
        type=int,
        default=0,
        help="after --minutes, the load goes on until this many rides are completed",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="the load's cap (default 3 x --minutes + 5): reaching it is a violation",
    )
    p.add_argument("--faults-each", type=int, default=50, help="injections of each kind")
    p.add_argument("--drivers", type=int, default=100)
    p.add_argument("--passengers", type=int, default=60)
    p.add_argument("--radius-m", type=float, default=2500.0, help="the city's size")
    p.add_argument("--speed-ms", type=float, default=15.0, help="driving speed")
    p.add_argument("--trip-m", type=float, default=1500.0, help="longest trip")
    p.add_argument("--payout-s", type=float, default=300.0, help="time for the payouts")
    p.add_argument("--settle-s", type=float, default=300.0, help="time to settle at the end")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--redis-cluster", type=int, default=0, help="live state on a cluster of N primaries"
    )
    p.add_argument("--api-processes", type=int, default=1, help="API processes behind HAProxy")
    p.add_argument("--json", action="store_true")
    p.add_argument("--keep", action="store_true", help="leave the stack running at the end")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chaos = Chaos(args)
    summary: dict[str, Any] = {}

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)  # the stack is stopped on the way out
    try:
        chaos.start()
        summary = chaos.run()
    finally:
        chaos.stop_faults.set()
        chaos.finished.set()
        if not args.keep:
            chaos.stop()
    summary["data_dir"] = str(chaos.data)
    print(json.dumps(summary, indent=2) if args.json else render(summary), flush=True)
    return 1 if summary.get("violations") else 0


if __name__ == "__main__":
    sys.exit(main())
