"""Where the API process spends its CPU under ping load: py-spy on one uvicorn process.

    .venv/bin/python bench/hotspots.py [single|batch] [--duration 10] [--top 30]

Needs py-spy in the venv (`.venv/bin/pip install py-spy`) and ptrace rights (root).
Runs the same wrk load as bench/pings.py while py-spy samples the server (not idle
time), then prints the functions with the most samples: on the stack at all
("inclusive") and at the top of the stack ("self"), grouped by function and file.
The figures of a profiled run are a little lower than unprofiled ones; use
bench/pings.py for throughput.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

from _harness import VENV_BIN, Stack, banner, run_wrk, stop
from pings import BATCH_PATH, SINGLE_PATH, lua_script, post_json

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """`fn (path/to/file.py:123)` -> `fn (to/file.py)`: one entry per function."""
    frame = _FRAME_LINE.sub(")", frame)
    m = re.match(r"^(.*) \((.*)\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group(1)} ({path})"


def summarize(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m.group(2))
        frames = [frame_name(f) for f in m.group(1).split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        leaf[frames[-1]] += count
    print(f"{total} samples (non-idle)")
    banner(f"top {top} inclusive (share of busy samples with the function on the stack)")
    for name, count in inclusive.most_common(top):
        print(f"{100 * count / total:6.1f}%  {name}")
    banner(f"top {top} self (share of busy samples at the top of the stack)")
    for name, count in leaf.most_common(top):
        print(f"{100 * count / total:6.1f}%  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", choices=["single", "batch"], nargs="?", default="single")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--drivers", type=int, default=200)
    ap.add_argument("--conns", type=int, default=32)
    args = ap.parse_args()
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy")
        return 2
    batch = args.target == "batch"
    path = BATCH_PATH if batch else SINGLE_PATH
    with Stack(extra_env={"RIDEHAIL_PING_RATE_LIMIT": "1000000"}) as stack:
        assert stack.api
        tokens = [d["token"] for d in stack.seed(args.drivers, 0)["drivers"]]
        for tok in tokens:
            post_json(stack.api_url + "/api/v1/drivers/me/status", tok, {"status": "online"})
        base = time.time() - 5 * 3600
        warm = lua_script(stack.tmp, "warm", tokens, path, base, batch=batch)
        run_wrk(stack.api_url + path, warm, conns=args.conns, duration_s=3)
        lua = lua_script(stack.tmp, "prof", tokens, path, base + 600, batch=batch)
        raw = stack.tmp / "profile.txt"
        spy = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(stack.api.pid),
                "--format",
                "raw",
                "--rate",
                "250",
                "--duration",
                str(args.duration + 1),
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            time.sleep(0.5)
            res = run_wrk(stack.api_url + path, lua, conns=args.conns, duration_s=args.duration)
            spy.wait(30)
        finally:
            stop(spy)
        banner(f"profile of {args.target} pings")
        print(
            f"under profile: {res.rps:,.0f} req/s, p50 {res.p50_ms:.2f} ms, p99 {res.p99_ms:.2f} ms"
        )
        if not raw.exists():
            err = spy.stderr.read().decode() if spy.stderr else ""
            print(f"py-spy wrote nothing: {err}")
            return 1
        summarize(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
