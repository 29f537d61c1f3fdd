"""Throughput with one and with two API processes behind HAProxy, as `ridehail run` starts
them with `RIDEHAIL_API_PROCESSES=2`, against one process alone, in the same run.

    .venv/bin/python bench/api_processes.py [--duration 10] [--conns 64] [--drivers 200]

Single pings (the hot path: one Lua script call in Redis per request) from wrk, with the
CPU each process used. The ratio asked for is two processes over one, both behind the
proxy; the proxy's own cost is one process behind it over one process alone. On a machine
of N cores, wrk, HAProxy, Redis and the API processes share them: the CPU column says
where each second went, and so what more cores would buy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _harness import MACHINE, Stack, banner, cpu_meter, machine, run_wrk, uvicorn_flags
from pings import SINGLE_PATH, lua_script, post_json

from devtools import launcher  # importable: _harness puts the checkout on the path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64, help="wrk connections")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--drivers", type=int, default=200)
    args = ap.parse_args()

    banner("API processes behind HAProxy")
    print(f"machine: {machine()}")
    print(
        f"servers: uvicorn {' '.join(uvicorn_flags())} --no-access-log; HAProxy as "
        f"`ridehail run` configures it; wrk -t{args.threads} -c{args.conns} -d{args.duration}s"
    )
    env = {"RIDEHAIL_PING_RATE_LIMIT": "1000000"}
    now = time.time()
    bases = iter(now - 5 * 3600 + k * 600 for k in range(100))
    with Stack(extra_env=env) as stack:
        assert stack.api is not None
        assert stack.redis is not None
        second_port = launcher.free_port()
        second = launcher.start_api(
            second_port,
            env=stack.env,
            log=stack.tmp / "api-2.log",
            extra=["--log-level", "warning", *uvicorn_flags()],
        )
        proxies = {}
        try:
            for name, backends in (
                ("1 behind proxy", [("api-1", stack.api_port)]),
                ("2 behind proxy", [("api-1", stack.api_port), ("api-2", second_port)]),
            ):
                port = launcher.free_port()
                config = stack.tmp / f"haproxy-{len(backends)}.cfg"
                config.write_text(launcher.haproxy_config("127.0.0.1", port, backends))
                proxies[name] = (port, launcher.start_haproxy(config, log=stack.tmp / "hap.log"))
                launcher.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=15)

            tokens = [d["token"] for d in stack.seed(args.drivers, 0)["drivers"]]
            for tok in tokens:
                code, body = post_json(
                    stack.api_url + "/api/v1/drivers/me/status", tok, {"status": "online"}
                )
                assert code == 200, body

            results: dict[str, float] = {}
            per_core: dict[str, float] = {}  # pings per second per core the API used
            targets = [("1 alone", stack.api_port, {"api-1": stack.api.pid})]
            for name, (port, proc) in proxies.items():
                pids = {"api-1": stack.api.pid, "proxy": proc.pid}
                if name.startswith("2"):
                    pids["api-2"] = second.pid
                targets.append((name, port, pids))
            for name, port, pids in targets:
                url = f"http://127.0.0.1:{port}"
                warm = lua_script(stack.tmp, "warm", tokens, SINGLE_PATH, next(bases), batch=False)
                run_wrk(url, warm, threads=args.threads, conns=args.conns, duration_s=args.warmup)
                lua = lua_script(stack.tmp, "run", tokens, SINGLE_PATH, next(bases), batch=False)
                with cpu_meter(**pids, redis=stack.redis.pid) as cpu:
                    res = run_wrk(
                        url, lua, threads=args.threads, conns=args.conns, duration_s=args.duration
                    )
                results[name] = res.rps
                api_cores = sum(v for k, v in cpu.items() if k.startswith("api")) / res.seconds
                per_core[name] = res.rps / api_cores if api_cores else 0.0
                spent = ", ".join(
                    f"{k} {v / res.seconds:.2f}" for k, v in cpu.items() if k != MACHINE
                )
                print(
                    f"{name:>15}: {res.rps:8,.0f} pings/s  p50 {res.p50_ms:5.1f} ms  "
                    f"p99 {res.p99_ms:6.1f} ms  errors {res.errors or 0}  "
                    f"CPU cores busy: {spent}, wrk {res.wrk_cpu_s / res.seconds:.2f}, "
                    f"machine {cpu[MACHINE] / res.seconds:.2f} of {os.cpu_count()}"
                )
            print()
            two_over_one = results["2 behind proxy"] / results["1 behind proxy"]
            proxy_cost = results["1 behind proxy"] / results["1 alone"]
            print(f"two processes / one, both behind the proxy: {two_over_one:.2f}x (target 1.8x)")
            print(f"one behind the proxy / one alone (the proxy's cost): {proxy_cost:.2f}x")
            efficiency = per_core["2 behind proxy"] / per_core["1 behind proxy"]
            print(
                f"pings per API core-second: one {per_core['1 behind proxy']:,.0f}, two "
                f"{per_core['2 behind proxy']:,.0f} ({efficiency:.2f}x): the processes scale "
                "with the cores they get; the ratio above is what the machine's cores allow "
                "once wrk, HAProxy and Redis have theirs"
            )
        finally:
            for _port, proc in proxies.values():
                launcher.stop(proc)
            launcher.stop(second)
    return 0


if __name__ == "__main__":
    sys.exit(main())
