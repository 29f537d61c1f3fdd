"""Bench-only GC experiments for the servers, applied without touching the app's code.

`pings.py --server-gc MODE` puts this directory on the servers' PYTHONPATH, so Python
imports it at start-up in every process of the run (it acts only in uvicorn processes):

- `RIDEHAIL_BENCH_GC=freeze`: `gc.collect(); gc.freeze()` 5 s after start (the app is
  imported by then), so full collections stop traversing the start-up objects;
- `RIDEHAIL_BENCH_GC=threshold:A,B,C`: `gc.set_threshold(A, B, C)`;
- `RIDEHAIL_BENCH_GC=off`: `gc.disable()` (reference only: cycles are never freed).

A sitecustomize found first on the path hides any other one; the venv has none.
"""

from __future__ import annotations

import gc
import os
import sys
import threading


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def _apply(mode: str) -> None:
    if mode == "off":
        gc.disable()
    elif mode == "freeze":
        threading.Timer(5.0, _freeze).start()
    elif mode.startswith("threshold:"):
        a, b, c = (int(v) for v in mode.split(":", 1)[1].split(","))
        gc.set_threshold(a, b, c)


_mode = os.environ.get("RIDEHAIL_BENCH_GC", "")
if _mode and "uvicorn" in os.path.basename(sys.argv[0] if sys.argv else ""):
    _apply(_mode)
