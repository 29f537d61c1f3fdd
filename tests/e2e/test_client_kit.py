"""The TypeScript client kit (`clients/kit`, `@ridehail/client`) against the real stack, as
an app runs it: its own tests (node's test runner) speak HTTP to `ridehail run`, kill the
API mid-ride (the stack starts it again) and check that nothing is lost."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

KIT = Path(__file__).resolve().parents[2] / "clients" / "kit"


@pytest.mark.timeout(600)
def test_the_kits_own_tests_pass_against_the_stack(stack: dict[str, Any]) -> None:
    assert (KIT / "node_modules" / ".bin" / "tsc").exists(), "run scripts/bootstrap.sh --postgres"
    done = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=540,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "RIDEHAIL_BASE_URL": stack["base"],
            "RIDEHAIL_STACK_LOG": str(stack["data"] / "stack.log"),
        },
    )
    out = done.stdout + done.stderr
    print(out)
    assert done.returncode == 0, out
    counts = dict(re.findall(r"^# (tests|pass|fail|skipped|todo) (\d+)$", out, re.M))
    assert counts == {"tests": "6", "pass": "6", "fail": "0", "skipped": "0", "todo": "0"}, out
    # the API really was killed, and the stack started it again
    log = (stack["data"] / "stack.log").read_text()
    assert "ridehail: api exited with -9; restarting" in log
