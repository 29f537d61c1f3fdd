"""The long fuzzing run: `tests/e2e/test_fuzz.py` (Schemathesis against the OpenAPI
document, every operation as every role) with many more examples than `make test` uses.

    .venv/bin/python bench/fuzz.py [--examples 500]

Prints the pytest summary; exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="examples per operation and role")
    args = ap.parse_args()
    env = {**os.environ, "RIDEHAIL_FUZZ_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"]
        + ["tests/e2e/test_fuzz.py", "-o", "timeout=0"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    print(
        f"fuzz: {args.examples} examples per operation and role, {time.monotonic() - started:.0f} s"
    )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
