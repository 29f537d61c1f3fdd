"""Run every benchmark, one after the other, then repeat their summaries together.

    .venv/bin/python bench/run_all.py [--quick] [--fanout]

--quick: 3 s measurements (a smoke run, figures are noisier).
--fanout: also the SSE run with 1,000 clients over 100 rides (10 per ride).
Each script runs in its own process and stops everything it started.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _harness import BENCH, PYTHON, ROOT


def run(args: list[str]) -> tuple[int, str]:
    print(f"\n$ {' '.join(['python', *args])}", flush=True)
    proc = subprocess.Popen(
        [PYTHON, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    code = proc.wait()
    text = "".join(lines)
    summary = text.split("=== summary ===", 1)[1] if "=== summary ===" in text else text[-2000:]
    return code, summary.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fanout", action="store_true")
    opts = ap.parse_args()
    duration = ["--duration", "3"] if opts.quick else []
    runs = [
        [str(BENCH / "pings.py"), *duration],
        [str(BENCH / "sse.py"), *duration],
    ]
    if opts.fanout:
        runs.append([str(BENCH / "sse.py"), "--clients-per-ride", "10", *duration])
    results = [(r, *run(r)) for r in runs]
    print("\n=== all summaries ===")
    failed = 0
    for argv, code, summary in results:
        print(f"\n[{' '.join(a.removeprefix(str(ROOT) + '/') for a in argv)}] exit {code}")
        print(summary)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
