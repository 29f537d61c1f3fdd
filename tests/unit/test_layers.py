"""The import contracts (pyproject.toml, checked by lint-imports in `make test`) name every
module they are about: a new rule module of the domain is covered the day it is added."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_rules_contract_names_every_rule_module_of_the_domain() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["name"] == "the domain's rules never import the use-case layer above them"
    ]
    modules = {f"domain.{p.stem}" for p in (ROOT / "domain").glob("*.py") if p.stem != "__init__"}
    assert set(contract["source_modules"]) == modules
