"""Ping throughput: single pings and batches of 50 against one API process, with the
machine's limits (a bare FastAPI endpoint, redis-benchmark) measured in the same run.

    .venv/bin/python bench/pings.py [--duration 10] [--conns 32] [--drivers 200]

Prints its figures; see bench/README.md for what each one means.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    MACHINE,
    Stack,
    WrkResult,
    banner,
    cpu_meter,
    gc_experiment_env,
    lua_string,
    machine,
    metrics,
    proc_stat,
    run_wrk,
    status_delta,
    uvicorn_flags,
)

SINGLE_PATH = "/api/v1/drivers/me/location"
BATCH_PATH = "/api/v1/drivers/me/locations"
BATCH = 50
# every run starts its timestamps 600 s after the previous one, all inside [now-6h, now]
RUN_SPACING_S = 600
FIRST_BASE_AGO_S = 5 * 3600

_LUA_COMMON = """
local tokens = {%(tokens)s}
local n = #tokens
local path = %(path)s
local base = %(base).2f
local step = 0.01
local per = {}
local i = 0
local hdrs = {}
for d = 1, n do
  hdrs[d] = {["Authorization"] = "Bearer " .. tokens[d], ["Content-Type"] = "application/json"}
end
math.randomseed(%(seed)d)

-- one fix of driver d: a few metres around Berlin centre, 10 ms after the previous one
local function fix(d)
  local k = (per[d] or 0) + 1
  per[d] = k
  return string.format('{"lat":%%.6f,"lng":%%.6f,"recorded_at":%%.2f,"speed":5}',
    52.52 + (math.random() - 0.5) * 0.0002, 13.405 + (math.random() - 0.5) * 0.0002,
    base + k * step)
end
"""

_LUA_SINGLE = """
request = function()
  i = i + 1
  local d = i %% n + 1
  return wrk.format("POST", path, hdrs[d], fix(d))
end
"""

_LUA_BATCH = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
bad = 0
sample = ""

request = function()
  i = i + 1
  local d = i %% n + 1
  local parts = {}
  for j = 1, %(batch)d do parts[j] = fix(d) end
  return wrk.format("POST", path, hdrs[d], '{"pings":[' .. table.concat(parts, ",") .. ']}')
end

-- every answer must be a 202 that accepted the whole batch
response = function(status, headers, body)
  if status ~= 202 or not string.find(body, '"accepted":%(batch)d,', 1, true) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. body end
  end
end
"""

_LUA_BATCH_DONE = """
local inner_done = done
done = function(summary, latency, requests)
  inner_done(summary, latency, requests)
  local total, first = 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    if first == "" then first = t:get("sample") end
  end
  io.write("WRKBAD " .. total .. " " .. first .. "\\n")
end
"""


def lua_script(
    tmp: Path, name: str, tokens: list[str], path: str, base: float, *, batch: bool
) -> Path:
    from _harness import WRK_DONE

    params: dict[str, Any] = {
        "tokens": ", ".join(lua_string(t) for t in tokens),
        "path": lua_string(path),
        "base": base,
        "seed": int(base) % 100000,
        "batch": BATCH,
    }
    text = _LUA_COMMON % params
    text += (_LUA_BATCH % params) if batch else (_LUA_SINGLE % params)
    text += WRK_DONE
    if batch:
        text += _LUA_BATCH_DONE
    script = tmp / f"{name}.lua"
    script.write_text(text)
    return script


def post_json(url: str, token: str | None, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def redis_benchmark(port: int, *command: str) -> tuple[float, str]:
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-q", "-n", "200000", "-P", "50", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    last = out.replace("\r", "\n").strip().splitlines()[-1]
    m = re.search(r"([\d.]+) requests per second", last)
    if not m:
        raise RuntimeError(f"unexpected redis-benchmark output: {out!r}")
    return float(m.group(1)), last.strip()


@dataclass(frozen=True)
class Run:
    wrk: WrkResult
    cpu: dict[str, float]  # CPU seconds per process during the measured run
    statuses: dict[str, int]  # the server's own count of answers, by status
    redis_calls: dict[str, int]  # Redis commands run (scripts' inner commands included)
    bad: str  # batch answers that did not accept every ping


def report(label: str, run: Run, per_req: int = 1) -> None:
    res = run.wrk
    secs = res.seconds
    rate = f" = {res.rps * per_req:,.0f} pings/s" if per_req > 1 else ""
    print(f"{label}: {res.requests} requests in {secs:.2f} s = {res.rps:,.0f} req/s{rate}")
    print(
        f"  latency p50 {res.p50_ms:.2f} ms  p90 {res.p90_ms:.2f} ms  "
        f"p99 {res.p99_ms:.2f} ms  max {res.max_ms:.2f} ms"
    )
    ours = {k: v for k, v in run.cpu.items() if k != MACHINE}
    others = run.cpu[MACHINE] - sum(ours.values()) - res.wrk_cpu_s
    cpu_txt = "  ".join(f"{k} {v / secs:.2f}" for k, v in ours.items())
    print(
        f"  CPU (cores busy): {cpu_txt}  wrk {res.wrk_cpu_s / secs:.2f}  "
        f"everything else on the machine {max(0.0, others) / secs:.2f}"
    )
    if run.statuses:
        print(f"  server-counted statuses: {run.statuses}")
    calls = {k: run.redis_calls[k] for k in ("evalsha", "xadd", "publish") if k in run.redis_calls}
    if calls:
        print(f"  Redis calls: {calls} (XADD: one per request whose newest fix was accepted)")
    if res.errors:
        print(f"  !! wrk socket/status errors: {res.errors}")
    if run.bad:
        print(f"  !! {run.bad[:400]}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    ap.add_argument("--conns", type=int, default=32, help="wrk connections")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--drivers", type=int, default=200)
    ap.add_argument(
        "--server-gc",
        default="",
        help="bench-only GC experiment in both servers: off | freeze | threshold:A,B,C "
        "(see bench/_gcsite/sitecustomize.py); default: Python's own GC settings",
    )
    args = ap.parse_args()

    banner("ping throughput")
    print(f"machine: {machine()}")
    print(
        f"server: 1 x uvicorn {' '.join(uvicorn_flags())} --no-access-log; "
        f"wrk -t{args.threads} -c{args.conns} -d{args.duration}s (+{args.warmup}s warm-up)"
    )
    now = time.time()
    bases = iter(now - FIRST_BASE_AGO_S + k * RUN_SPACING_S for k in range(100))

    env = {"RIDEHAIL_PING_RATE_LIMIT": "1000000"}
    if args.server_gc:
        env |= gc_experiment_env(args.server_gc)
        print(f"GC experiment in the servers: {args.server_gc}")
    with Stack(extra_env=env, with_bare=True) as stack:
        assert stack.api
        assert stack.bare
        assert stack.redis
        api_pid, redis_pid = stack.api.pid, stack.redis.pid

        # --- the machine's limits: Redis ------------------------------------------------
        set_rps, set_line = redis_benchmark(stack.redis_port, "-t", "set")
        geo_rps, geo_line = redis_benchmark(
            stack.redis_port, "-r", "100000", "geoadd", "geo:b", "13.4", "52.5", "m:__rand_int__"
        )
        stack.redis_cli("del", "geo:b", "key:__rand_int__")

        # --- drivers, online ------------------------------------------------------------
        seeded = stack.seed(args.drivers, 0)["drivers"]
        tokens = [d["token"] for d in seeded]
        for tok in tokens:
            code, body = post_json(
                stack.api_url + "/api/v1/drivers/me/status", tok, {"status": "online"}
            )
            if code != 200:
                print(f"!! set online failed: {code} {body}")
                return 1

        # --- sanity: the generated pings are accepted (not duplicates, not rejected) -------
        check_base = next(bases)
        code, body = post_json(
            stack.api_url + SINGLE_PATH,
            tokens[0],
            {"lat": 52.52, "lng": 13.405, "recorded_at": check_base, "speed": 5},
        )
        print(f"sanity single ping -> {code} {body}")
        code, body = post_json(
            stack.api_url + BATCH_PATH,
            tokens[0],
            {
                "pings": [
                    {
                        "lat": 52.52,
                        "lng": 13.405,
                        "recorded_at": check_base + 1 + i / 100,
                        "speed": 5,
                    }
                    for i in range(BATCH)
                ]
            },
        )
        print(f"sanity batch of {BATCH} -> {code} {body}")

        tmp = stack.tmp
        api_pids = {"api": api_pid, "redis": redis_pid}

        def measure(name: str, url: str, path: str, pids: dict[str, int], *, batch: bool) -> Run:
            warm = lua_script(tmp, f"{name}-warm", tokens, path, next(bases), batch=batch)
            run_wrk(url, warm, threads=args.threads, conns=args.conns, duration_s=args.warmup)
            lua = lua_script(tmp, name, tokens, path, next(bases), batch=batch)
            api = "api" in pids
            m0 = metrics(stack) if api else {}
            cs0 = stack.commandstats()
            with cpu_meter(**pids) as cpu:
                res = run_wrk(
                    url, lua, threads=args.threads, conns=args.conns, duration_s=args.duration
                )
            m1 = metrics(stack) if api else {}
            cs1 = stack.commandstats()
            bad = ""
            if batch:
                found = re.search(r"WRKBAD (\d+) ?(.*)", lua.with_suffix(".out").read_text())
                if found and int(found.group(1)):
                    bad = f"{found.group(1)} answers not 202/all accepted, e.g. {found.group(2)}"
            return Run(
                res,
                cpu,
                status_delta(m0, m1, path),
                {k: v - cs0.get(k, 0) for k, v in cs1.items() if v - cs0.get(k, 0)},
                bad,
            )

        bare = measure(
            "bare", stack.bare_url + "/c", "/c", {"bare-app": stack.bare.pid}, batch=False
        )
        bare_redis = measure(
            "bare-redis",
            stack.bare_url + "/r",
            "/r",
            {"bare-app": stack.bare.pid, "redis": redis_pid},
            batch=False,
        )
        rss0 = proc_stat(api_pid)[1]
        single = measure("single", stack.api_url + SINGLE_PATH, SINGLE_PATH, api_pids, batch=False)
        batch = measure("batch", stack.api_url + BATCH_PATH, BATCH_PATH, api_pids, batch=True)
        rss1 = proc_stat(api_pid)[1]

    banner("results")
    print(f"redis SET (-P 50):    {set_rps:,.0f} ops/s   [{set_line}]")
    print(f"redis GEOADD (-P 50): {geo_rps:,.0f} ops/s   [{geo_line}]")
    report("bare endpoint", bare)
    report("bare endpoint + one Redis GET", bare_redis)
    report("single ping", single)
    evals = single.redis_calls.get("evalsha", 0)
    if single.wrk.requests and evals:
        print(
            f"  Redis CPU per ping script call: {single.cpu['redis'] / evals * 1e6:.1f} us; "
            f"API CPU per ping request: {single.cpu['api'] / single.wrk.requests * 1e6:.0f} us"
        )
    report(f"batch of {BATCH}", batch, per_req=BATCH)
    if batch.wrk.requests:
        per_batch = batch.cpu["api"] / batch.wrk.requests
        print(
            f"  API CPU per batch request: {per_batch * 1e6:.0f} us "
            f"({per_batch / BATCH * 1e6:.1f} us per ping)"
        )
    print(f"API RSS: {rss0 / 1024:.1f} MB before single pings, {rss1 / 1024:.1f} MB after batches")

    banner("summary")
    s, b, bt = single.wrk, bare.wrk, batch.wrk
    ratio = s.rps / b.rps if b.rps else float("nan")
    bps = bt.rps * BATCH
    print(f"single pings/s:        {s.rps:,.0f}   (p50 {s.p50_ms:.2f} ms, p99 {s.p99_ms:.2f} ms)")
    print(f"bare endpoint req/s:   {b.rps:,.0f}   (p50 {b.p50_ms:.2f} ms, p99 {b.p99_ms:.2f} ms)")
    print(f"ratio single/bare:     {ratio:.2f}   (target >= 0.6: {verdict(ratio >= 0.6)})")
    br = bare_redis.wrk
    one_call = s.rps / br.rps if br.rps else float("nan")
    print(
        f"bare + 1 Redis GET:    {br.rps:,.0f}   (p50 {br.p50_ms:.2f} ms, p99 {br.p99_ms:.2f} ms)"
    )
    print(
        f"ratio single/(bare + 1 Redis call): {one_call:.2f}   "
        f"(target >= 0.9: {verdict(one_call >= 0.9)})"
    )
    print(f"single pings/s / redis SET ops/s: {s.rps / set_rps:.4f}")
    batch_ratio = bps / b.rps if b.rps else float("nan")
    print(
        f"batch pings/s:         {bps:,.0f}   ({bt.rps:,.0f} req/s x {BATCH}; "
        f"p50 {bt.p50_ms:.2f} ms, p99 {bt.p99_ms:.2f} ms)"
    )
    print(
        f"ratio batch pings/s / bare req/s: {batch_ratio:.1f}   "
        f"(target >= 10: {verdict(batch_ratio >= 10)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
