"""The error codes the document lists are every code the source can answer with."""

from __future__ import annotations

import ast
from pathlib import Path

from api.error_codes import KNOWN, MEANINGS, ErrorCode
from domain.dispatch import OfferStatus
from domain.errors import DomainError

ROOT = Path(__file__).resolve().parents[2]

#: codes built from a variable, with every value the variable can take
FORMED = {
    "f'offer_{offer.status}'": {f"offer_{s}" for s in OfferStatus} - {"offer_pending"},
    "f'negative_{name}'": {"negative_speed", "negative_accuracy"},
    "f\"{what.replace(' ', '_')}_not_found\"": {"ride_not_found"},
}
#: expressions that pass on a code already checked where it was made
PASSED_ON = {
    "bad.reason",
    "answer['reasons'][0]['reason']",
    "code",
    "(getattr(err, 'code', None) if err else None) or exc.code or 'card_declined'",
    "exc.code or 'payment_provider_rejected'",
}


def _codes_in_source() -> dict[str, str]:
    """Each code the source raises (ApiError's third argument, `code=`, InvalidPing's
    reason, an error class's `code`), with where."""
    found: dict[str, str] = {}
    for package in ("api", "domain", "infra", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                exprs: list[ast.expr] = []
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                    if name == "ApiError" and len(node.args) >= 3:
                        exprs.append(node.args[2])
                    if name == "InvalidPing" and node.args:
                        exprs.append(node.args[0])
                    exprs += [kw.value for kw in node.keywords if kw.arg == "code"]
                if isinstance(node, ast.ClassDef):
                    exprs += [kw.value for kw in node.keywords if kw.arg == "code"]
                for expr in exprs:
                    where = f"{path.relative_to(ROOT)}:{expr.lineno}"
                    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                        found[expr.value] = where
                        continue
                    text = ast.unparse(expr)
                    if text in FORMED:
                        found.update({code: where for code in FORMED[text]})
                    else:
                        assert text in PASSED_ON, f"{where}: a code the test cannot read: {text}"
    return found


def test_every_code_the_source_can_answer_with_is_listed_and_described() -> None:
    found = _codes_in_source()
    assert len(found) > 60  # the scan reads the source: it must find what is there
    missing = {code: where for code, where in found.items() if code not in KNOWN}
    assert not missing, f"codes not in api/error_codes.py: {missing}"
    assert all(len(meaning) >= 10 for meaning in MEANINGS.values())
    assert {e.value for e in ErrorCode} == set(MEANINGS)


def test_a_provider_code_of_its_own_is_answered_with_its_errors_code() -> None:
    """Stripe's `expired_card` reaches the API as our `card_declined`."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import errors
    from domain.payments import CardDeclined

    app = FastAPI()
    errors.install(app)

    @app.get("/declined")
    def declined() -> None:
        raise CardDeclined("Your card has expired.", code="expired_card")

    answer = TestClient(app).get("/declined")
    assert answer.status_code == 409
    assert answer.json() == {"detail": "Your card has expired.", "code": "card_declined"}
    assert issubclass(CardDeclined, DomainError)
