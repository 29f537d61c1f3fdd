"""The long chaos run: `make run`'s stack under the simulator with at least `--faults-each`
(50) faults of every kind, then every promise checked (see `devtools/chaos.py`).

    .venv/bin/python bench/chaos.py [--minutes 20 --faults-each 50 --drivers 100 ...]

Prints the summary (rides, faults by kind, money moved, pings and pushes checked) and
every violation; exits 1 on any. `tests/e2e/test_chaos.py` is the short one in
`make test`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import chaos  # noqa: E402

if __name__ == "__main__":
    sys.exit(chaos.main(sys.argv[1:]))
