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


WORKERS_MAY_USE = {
    "infra.unit_of_work",  # the composition root: units of work, contexts, retry policy
    "infra.queue",
    "infra.routing",
    "infra.settings",
    "infra.metrics",
    "infra.logs",
}


def test_the_workers_contract_names_every_adapter_of_infra() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["name"].startswith("workers change state only through use cases")
    ]
    infra = {
        f"infra.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "infra").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    forbidden = {m for m in contract["forbidden_modules"] if m.startswith("infra.")}
    assert forbidden == infra - WORKERS_MAY_USE
    assert {"sqlalchemy", "sqlmodel", "redis", "stripe"} <= set(contract["forbidden_modules"])
