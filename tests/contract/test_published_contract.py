"""The published contract as app teams meet it: `docs/openapi.json` through Spectral's
`spectral:oas` and Redocly's `recommended` rules, `docs/asyncapi.json` through the AsyncAPI
parser, and a typed client generated from the document (openapi-typescript) that a small
app (`devtools/apilint/check/app.ts`) compiles against. Each tool must report nothing: no
error, no warning (Redocly's reviewed exceptions are in its ignore file, each with why).

The tools are pinned in `devtools/apilint/package-lock.json`, installed by the bootstrap.
`tests/unit/test_contract.py` keeps the files equal to what the service serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

LINT = Path(__file__).resolve().parents[2] / "devtools" / "apilint"
BIN = LINT / "node_modules" / ".bin"


def _run(*command: str) -> str:
    done = subprocess.run(
        command,
        cwd=LINT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "NO_COLOR": "1", "REDOCLY_TELEMETRY": "off"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    assert (BIN / "spectral").exists(), "run scripts/bootstrap.sh --postgres (npm ci)"


def test_spectral_finds_nothing() -> None:
    out = _run(
        "spectral", "lint", "--fail-severity=hint", "--ruleset", ".spectral.yaml",
        "../../docs/openapi.json",
    )  # fmt: skip
    assert "No results with a severity of 'hint' or higher found!" in out, out


def test_redocly_recommended_finds_nothing() -> None:
    out = _run(
        "redocly", "lint", "--config", "redocly.yaml", "--format=summary", "../../docs/openapi.json"
    )
    assert "Your API description is valid" in out, out
    assert not re.search(r"^(error|warning) ", out, re.M), out
    assert "You have" not in out, out  # "You have N warnings"


def test_the_asyncapi_document_is_valid_without_a_remark() -> None:
    out = _run("node", "asyncapi-check.mjs", "../../docs/asyncapi.json")
    assert out.strip().endswith("valid"), out
    assert "channels ride_events, driver_events, admin_events, 8 messages" in out
    assert not re.search(r"^(error|warning|info|hint) ", out, re.M), out


def test_a_typed_client_generates_and_an_app_compiles_against_it() -> None:
    _run(
        "openapi-typescript", "../../docs/openapi.json", "--default-non-nullable", "false",
        "-o", "generated/api.d.ts",
    )  # fmt: skip
    generated = (LINT / "generated" / "api.d.ts").read_text()
    assert "request_ride: {" in generated  # operations by their own names
    assert "api_v1" not in generated.replace("/api/v1/", "")
    assert '"RideStreamFrame":' in generated or "RideStreamFrame:" in generated
    _run("tsc", "-p", "tsconfig.json")


def test_a_python_client_generates_without_a_warning(tmp_path: Path) -> None:
    import os
    import sys

    venv_bin = Path(sys.executable).parent
    out = tmp_path / "client"
    done = subprocess.run(
        [str(venv_bin / "openapi-python-client"), "generate", "--path",
         str(LINT.parents[1] / "docs" / "openapi.json"), "--output-path", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower(), said
    models = {p.stem for p in (out / "ridehail_client" / "models").glob("*.py")}
    assert {"ride_public", "ride_offered", "error_code", "location_frame"} <= models
    assert not [m for m in models if "api_v1" in m or m.startswith("body_")], sorted(models)
    calls = {p.stem for p in (out / "ridehail_client" / "api" / "rides").glob("*.py")}
    assert {"request_ride", "get_ride", "accept_offer"} <= calls


def test_the_client_kits_types_are_the_published_contracts() -> None:
    """`clients/kit/src/api.d.ts` is what openapi-typescript makes of `docs/openapi.json`
    (regenerate with `npm run generate` in clients/kit)."""
    kit = LINT.parents[1] / "clients" / "kit"
    fresh = kit / "node_modules" / ".generated-check.d.ts"
    done = subprocess.run(
        [str(kit / "node_modules" / ".bin" / "openapi-typescript"), "../../docs/openapi.json",
         "--default-non-nullable", "false", "-o", str(fresh)],
        cwd=kit, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert fresh.read_text() == (kit / "src" / "api.d.ts").read_text(), "npm run generate"


def test_the_client_kits_reference_is_made_from_its_types(tmp_path: Path) -> None:
    """`docs/clients-api/README.md` is what TypeDoc makes of the kit's exported types and
    their comments (regenerate with `npm run docs` in clients/kit)."""
    kit = LINT.parents[1] / "clients" / "kit"
    done = subprocess.run(
        [str(kit / "node_modules" / ".bin" / "typedoc"), "--logLevel", "Warn", "--out",
         str(tmp_path)],
        cwd=kit, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (done.stdout + done.stderr).strip(), done.stdout + done.stderr  # no warning
    made = (tmp_path / "README.md").read_text()
    assert made == (LINT.parents[1] / "docs" / "clients-api" / "README.md").read_text()
    assert "### LocationReporter" in made
    assert "http" not in made  # nothing in docs/ links outside the repository


def test_the_reference_app_compiles_against_the_kit_and_builds_what_it_serves(
    tmp_path: Path,
) -> None:
    """`clients/app` type-checks against the kit's source (and so the contract's types),
    and its build makes both pages' bundles from the kit, with nothing else fetched."""
    app = LINT.parents[1] / "clients" / "app"
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    check = subprocess.run(
        [str(app / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json", "--noEmit"],
        cwd=app, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    built = subprocess.run(
        ["node", "build.mjs"], cwd=app, capture_output=True, text=True, timeout=300, env=env
    )
    assert built.returncode == 0, built.stdout + built.stderr
    sizes = dict(re.findall(r"^dist/assets/(\S+): ([\d.]+) KB", built.stdout, re.M))
    assert {"passenger.js", "driver.js", "app.css"} <= set(sizes), built.stdout
    bundle = (app / "dist" / "assets" / "passenger.js").read_text()
    assert "last_event_id" in bundle  # the kit is in it (its stream-token resume)
    for page in ("index.html", "passenger.html", "driver.html"):
        html = (app / "dist" / page).read_text()
        assert "http" not in html, page  # everything from /app
