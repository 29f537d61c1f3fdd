"""An offline stand-in for Firebase Cloud Messaging (HTTP v1), for development and tests.

It speaks what firebase-admin speaks:
- `POST /token`: the OAuth 2.0 exchange google-auth performs for a service account (a
  signed JWT assertion, `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`) ->
  `{access_token, expires_in, token_type}`. The assertion's claims are checked (issuer,
  audience, expiry) and recorded; its signature is not (the stand-in does not hold the
  service account's public key).
- `POST /v1/projects/{project}/messages:send` with `Authorization: Bearer <token>` from
  that exchange -> `{"name": "projects/{project}/messages/{id}"}`, or FCM's error body.

FCM's error answers, on demand:
- a device token starting with `unregistered-` -> 404 `UNREGISTERED`; `invalid-` -> 400
  `INVALID_ARGUMENT`;
- `POST /_faults {"errors": ["UNAVAILABLE", ...], "token": optional, "retry_after": s}`
  queues answers for the next sends (to that token only, if given): `UNAVAILABLE` (503,
  with `Retry-After`), `QUOTA_EXCEEDED` (429, with `Retry-After`), `INTERNAL` (500),
  `UNREGISTERED`, `INVALID_ARGUMENT`. `{"delay_s": 3, "count": 1}` instead: the next
  sends are taken (and recorded) but answered `delay_s` late, as when the connection is
  slow or the sender dies waiting. `GET /_faults` lists those still queued,
  `DELETE /_faults` clears them.

A record of what it was asked: `GET /_requests` (each send: project, message, the
answer's status), `GET /_tokens` (each OAuth exchange), `DELETE /_requests` clears both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import time
import uuid
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="FCM stand-in", docs_url=None, redoc_url=None)

_sent: list[dict[str, Any]] = []
_exchanges: list[dict[str, Any]] = []
_tokens: dict[str, float] = {}  # access token -> expiry (unix s)
_faults: deque[dict[str, Any]] = deque()

#: FCM's answer for each error code: HTTP status, canonical status, and Retry-After
_ERRORS: dict[str, tuple[int, str, bool]] = {
    "UNREGISTERED": (404, "NOT_FOUND", False),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", False),
    "UNAVAILABLE": (503, "UNAVAILABLE", True),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", True),
    "INTERNAL": (500, "INTERNAL", False),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", False),
}
_MESSAGES = {
    "UNREGISTERED": "Requested entity was not found.",
    "INVALID_ARGUMENT": "The registration token is not a valid FCM registration token",
    "UNAVAILABLE": "The service is currently unavailable.",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Messages'.",
    "INTERNAL": "Internal error encountered.",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
}


def fcm_error(code: str, retry_after: int | None = None) -> JSONResponse:
    status, canonical, retryable = _ERRORS[code]
    body = {
        "error": {
            "code": status,
            "message": _MESSAGES[code],
            "status": canonical,
            "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
            ],
        }
    }
    headers = {"Retry-After": str(retry_after or 1)} if retryable else None
    return JSONResponse(body, status_code=status, headers=headers)


def _claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


@app.post("/token")
async def token(request: Request) -> JSONResponse:
    form = await request.form()
    grant, assertion = form.get("grant_type"), form.get("assertion")
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not isinstance(assertion, str):
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    try:
        claims = _claims(assertion)
    except (ValueError, IndexError):
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    audience_ok = str(claims.get("aud", "")).endswith("/token")
    if not claims.get("iss") or not audience_ok or claims.get("exp", 0) < time.time():
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    access = "standin-" + secrets.token_urlsafe(24)
    _tokens[access] = time.time() + 3600
    _exchanges.append({"iss": claims["iss"], "scope": claims.get("scope"), "at": time.time()})
    return JSONResponse({"access_token": access, "expires_in": 3600, "token_type": "Bearer"})


def _fault_for(device: str) -> dict[str, Any] | None:
    for fault in list(_faults):
        if fault.get("token") in (None, device):
            _faults.remove(fault)
            return fault
    return None


@app.post("/v1/projects/{project}/messages:send")
async def send(project: str, request: Request) -> JSONResponse:
    auth = request.headers.get("authorization", "")
    bearer = auth.removeprefix("Bearer ").strip()
    if _tokens.get(bearer, 0) < time.time():
        return JSONResponse(
            {"error": {"code": 401, "message": "invalid credentials", "status": "UNAUTHENTICATED"}},
            status_code=401,
        )
    body = await request.json()
    message = body.get("message", {})
    device = str(message.get("token", ""))
    fault = _fault_for(device)
    # a slow answer: FCM takes the message, and the sender hears of it `delay_s` later
    hold = float(fault.get("delay_s") or 0) if fault is not None else 0.0
    if fault is not None and not hold:
        answer = fcm_error(fault["error"], fault.get("retry_after"))
    elif device.startswith("unregistered-"):
        answer = fcm_error("UNREGISTERED")
    elif device.startswith("invalid-") or not device:
        answer = fcm_error("INVALID_ARGUMENT")
    else:
        answer = JSONResponse({"name": f"projects/{project}/messages/{uuid.uuid4().hex}"})
    _sent.append(
        {
            "project": project,
            "message": message,
            "validate_only": bool(body.get("validate_only")),
            "status": answer.status_code,
            "at": time.time(),
        }
    )
    if hold:
        await asyncio.sleep(hold)
    return answer


@app.post("/_faults")
async def add_faults(request: Request) -> JSONResponse:
    spec = await request.json()
    unknown = [c for c in spec.get("errors", []) if c not in _ERRORS]
    if unknown:
        return JSONResponse({"error": f"unknown error codes {unknown}"}, status_code=400)
    if spec.get("delay_s"):
        for _ in range(int(spec.get("count", 1))):
            _faults.append({"delay_s": float(spec["delay_s"]), "token": spec.get("token")})
    for code in spec.get("errors", []):
        _faults.append(
            {"error": code, "token": spec.get("token"), "retry_after": spec.get("retry_after")}
        )
    return JSONResponse({"queued": len(_faults)})


@app.get("/_faults")
async def list_faults() -> list[dict[str, Any]]:
    return list(_faults)


@app.delete("/_faults")
async def clear_faults() -> dict[str, int]:
    n = len(_faults)
    _faults.clear()
    return {"cleared": n}


@app.get("/_requests")
async def requests_seen() -> list[dict[str, Any]]:
    return _sent


@app.get("/_tokens")
async def exchanges_seen() -> list[dict[str, Any]]:
    return _exchanges


@app.delete("/_requests")
async def clear() -> dict[str, int]:
    n = len(_sent)
    _sent.clear()
    _exchanges.clear()
    return {"cleared": n}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8421)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
