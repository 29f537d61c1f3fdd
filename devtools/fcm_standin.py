"""An offline stand-in for Firebase Cloud Messaging (HTTP v1), for development and tests.

It speaks what firebase-admin speaks:
- `POST /token`: the OAuth 2.0 exchange google-auth performs for a service account (a
  signed JWT assertion, `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`) ->
  `{access_token, expires_in, token_type}`. The assertion's claims are checked as Google
  checks them (issuer, audience, a lifetime of at most an hour, not expired) and recorded;
  a refusal is `{"error": "invalid_grant", "error_description": ...}`. Its RS256 signature
  is verified against the service account's key, read from the service-account JSON files
  in the folders given by `--trust` (the data folder, where the product keeps its offline
  account): an assertion no trusted key signed is refused, as Google refuses it.
- `POST /v1/projects/{project}/messages:send` with `Authorization: Bearer <token>` from
  that exchange -> `{"name": "projects/{project}/messages/{id}"}`, or FCM's error body.
  As FCM does, it refuses (403) a token without the messaging scope and a send to a
  project other than the service account's, and (400 INVALID_ARGUMENT) a body that is
  not JSON, unknown fields, a token that is not token-shaped (a field violation on
  `message.token`: the only INVALID_ARGUMENT that blames the token), a reserved data key
  (`from`, `message_type`, `google.*`, `gcm.*`), a message over 4,096 bytes, a bad TTL.
  `validate_only` validates and answers with FCM's fake message name, sending nothing.

FCM's error answers, on demand:
- a device token starting with `unregistered-` -> 404 `UNREGISTERED`; `invalid-` -> 400
  `INVALID_ARGUMENT`;
- `POST /_faults {"errors": ["UNAVAILABLE", ...], "token": optional, "retry_after": s}`
  queues answers for the next sends (to that token only, if given): `UNAVAILABLE` (503,
  with `Retry-After`), `QUOTA_EXCEEDED` (429, with `Retry-After`), `INTERNAL` (500),
  `UNREGISTERED`,   `INVALID_ARGUMENT`, `THIRD_PARTY_AUTH_ERROR` (401: APNs or web push refused our
  credentials). `{"delay_s": 3, "count": 1}` instead: the next
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
import re
import secrets
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="FCM stand-in", docs_url=None, redoc_url=None)

_sent: list[dict[str, Any]] = []
_exchanges: list[dict[str, Any]] = []
# access token -> (expiry in unix s, the service account's project, its scopes)
_tokens: dict[str, tuple[float, str, tuple[str, ...]]] = {}
_faults: deque[dict[str, Any]] = deque()
_trusted: list[Path] = []  # folders of service-account JSON files whose keys sign assertions
_served: list[dict[str, Any]] = []  # each send a fault struck: what was served, not armed

#: FCM's answer for each error code: HTTP status, canonical status, and Retry-After
_ERRORS: dict[str, tuple[int, str, bool]] = {
    "UNREGISTERED": (404, "NOT_FOUND", False),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", False),
    "UNAVAILABLE": (503, "UNAVAILABLE", True),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", True),
    "INTERNAL": (500, "INTERNAL", False),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", False),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", False),
}
_MESSAGES = {
    "UNREGISTERED": "Requested entity was not found.",
    "INVALID_ARGUMENT": "The registration token is not a valid FCM registration token",
    "UNAVAILABLE": "The service is currently unavailable.",
    "QUOTA_EXCEEDED": "Quota exceeded for quota metric 'Messages'.",
    "INTERNAL": "Internal error encountered.",
    "SENDER_ID_MISMATCH": "SenderId mismatch",
    "THIRD_PARTY_AUTH_ERROR": "Auth error from APNS or Web Push Service",
}
_SCOPES = (
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
)
_MESSAGE_FIELDS = {
    "name", "data", "notification", "android", "webpush", "apns", "fcm_options", "token",
    "topic", "condition",
}  # fmt: skip
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-:.]{8,4096}$")
_RESERVED_DATA = re.compile(r"^(from|message_type|notification|google(\..*)?|gcm(\..*)?)$")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_MAX_TTL_S = 28 * 24 * 3600
_MAX_BYTES = 4096


def fcm_error(
    code: str,
    retry_after: int | None = None,
    message: str | None = None,
    field: str | None = None,
) -> JSONResponse:
    status, canonical, retryable = _ERRORS[code]
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    ]
    if field is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    body = {
        "error": {
            "code": status,
            "message": message or _MESSAGES[code],
            "status": canonical,
            "details": details,
        }
    }
    headers = {"Retry-After": str(retry_after or 1)} if retryable else None
    return JSONResponse(body, status_code=status, headers=headers)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(assertion: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(_b64(assertion.split(".")[1]))
    return claims


def _signed_by_a_trusted_key(assertion: str, issuer: str) -> bool:
    """The assertion's RS256 signature, checked with the key of the service account named
    `issuer` (its `client_email`) in the trusted folders."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    head, payload, signature = assertion.split(".")
    if json.loads(_b64(head)).get("alg") != "RS256":
        return False
    for folder in _trusted:
        for path in folder.glob("*.json"):
            try:
                account = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(account, dict) or account.get("client_email") != issuer:
                continue
            key = serialization.load_pem_private_key(account["private_key"].encode(), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                continue
            try:
                key.public_key().verify(
                    _b64(signature),
                    f"{head}.{payload}".encode(),
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
            except InvalidSignature:
                continue
            return True
    return False


def _refused(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


@app.post("/token")
async def token(request: Request) -> JSONResponse:
    form = await request.form()
    grant, assertion = form.get("grant_type"), form.get("assertion")
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return _refused("unsupported_grant_type", "Invalid grant_type: " + str(grant or ""))
    if not isinstance(assertion, str):
        return _refused("invalid_request", "Missing required parameter: assertion")
    try:
        claims = _claims(assertion)
    except (ValueError, IndexError):
        return _refused("invalid_grant", "Invalid JWT: could not be decoded.")
    now = time.time()
    iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
    if not claims.get("iss"):
        return _refused("invalid_grant", "Invalid JWT: no issuer.")
    if not str(claims.get("aud", "")).endswith("/token"):
        return _refused("invalid_grant", "Invalid JWT: Failed audience check.")
    try:
        signed = _signed_by_a_trusted_key(assertion, str(claims["iss"]))
    except (ValueError, KeyError, TypeError):
        signed = False
    if not signed:
        return _refused("invalid_grant", "Invalid JWT Signature.")
    if exp - iat > 3600 or exp < now or iat > now + 300:
        return _refused(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    access = "standin-" + secrets.token_urlsafe(24)
    project = str(claims["iss"]).partition("@")[2].removesuffix(".iam.gserviceaccount.com")
    scopes = tuple(str(claims.get("scope", "")).split())
    _tokens[access] = (now + 3600, project, scopes)
    _exchanges.append({"iss": claims["iss"], "scope": claims.get("scope"), "at": now})
    return JSONResponse({"access_token": access, "expires_in": 3600, "token_type": "Bearer"})


def _fault_for(device: str) -> dict[str, Any] | None:
    for fault in list(_faults):
        if fault.get("token") in (None, device):
            _faults.remove(fault)
            return fault
    return None


def _google_error(status: int, canonical: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": canonical}}, status_code=status
    )


def _invalid(message: str, field: str) -> JSONResponse:
    return fcm_error("INVALID_ARGUMENT", message=message, field=field)


def _validate(message: Any, raw_size: int) -> JSONResponse | None:
    """FCM's own checks on a message, as FCM answers them (None: valid)."""
    if not isinstance(message, dict):
        return _invalid("Invalid JSON payload received. 'message' must be an object.", "message")
    for name in message:
        if name not in _MESSAGE_FIELDS:
            return _invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at 'message': "
                "Cannot find field.",
                "message",
            )
    targets = [k for k in ("token", "topic", "condition") if message.get(k)]
    if len(targets) != 1:
        return _invalid("Exactly one of token, topic or condition must be given.", "message")
    device = message.get("token")
    if device is not None and not (isinstance(device, str) and _TOKEN_SHAPE.match(device)):
        return _invalid(
            "The registration token is not a valid FCM registration token", "message.token"
        )
    data = message.get("data") or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return _invalid("Invalid value at 'message.data': values must be strings.", "message.data")
    for i, key in enumerate(data):
        if _RESERVED_DATA.match(key):
            return _invalid(
                f"Invalid value at 'message.data[{i}].key' (TYPE_STRING), \"{key}\"",
                f"message.data[{i}].key",
            )
    ttl = (message.get("android") or {}).get("ttl")
    if ttl is not None and (
        not isinstance(ttl, str) or not _TTL.match(ttl) or float(ttl[:-1]) > _MAX_TTL_S
    ):
        return _invalid(f"Invalid value at 'message.android.ttl', \"{ttl}\"", "message.android.ttl")
    if raw_size > _MAX_BYTES:
        return _invalid("Message is too big", "message")
    return None


@app.post("/v1/projects/{project}/messages:send")
async def send(project: str, request: Request) -> JSONResponse:
    auth = request.headers.get("authorization", "")
    bearer = auth.removeprefix("Bearer ").strip()
    expires, owner, scopes = _tokens.get(bearer, (0.0, "", ()))
    if expires < time.time():
        return _google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
    if not any(s in scopes for s in _SCOPES):
        return _google_error(
            403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."
        )
    if owner != project:
        return _google_error(
            403,
            "PERMISSION_DENIED",
            f"Permission 'cloudmessaging.messages.create' denied on resource "
            f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).",
        )
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        return _invalid("Invalid JSON payload received. Unexpected token.", "")
    if not isinstance(body, dict) or set(body) - {"message", "validate_only"}:
        return _invalid("Invalid JSON payload received. Unknown name at '': Cannot find field.", "")
    message = body.get("message")
    invalid = _validate(message, len(json.dumps(message, separators=(",", ":")).encode()))
    device = str(message.get("token", "")) if isinstance(message, dict) else ""
    if invalid is not None:
        _sent.append(
            {
                "project": project,
                "message": message,
                "validate_only": bool(body.get("validate_only")),
                "status": invalid.status_code,
                "at": time.time(),
            }
        )
        return invalid
    assert isinstance(message, dict)
    if body.get("validate_only"):  # checked, never sent: FCM's fake name
        return JSONResponse({"name": f"projects/{project}/messages/fake_message_id"})
    fault = _fault_for(device)
    if fault is not None:
        _served.append({**fault, "device": device, "at": time.time()})
    # a slow answer: FCM takes the message, and the sender hears of it `delay_s` later
    hold = float(fault.get("delay_s") or 0) if fault is not None else 0.0
    if fault is not None and not hold:
        answer = fcm_error(fault["error"], fault.get("retry_after"))
    elif device.startswith("unregistered-"):
        answer = fcm_error("UNREGISTERED")
    elif device.startswith("invalid-"):
        answer = _invalid(
            "The registration token is not a valid FCM registration token", "message.token"
        )
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
    label = spec.get("label")
    if spec.get("delay_s"):
        for _ in range(int(spec.get("count", 1))):
            _faults.append(
                {"delay_s": float(spec["delay_s"]), "token": spec.get("token"), "label": label}
            )
    for code in spec.get("errors", []):
        _faults.append(
            {
                "error": code,
                "token": spec.get("token"),
                "retry_after": spec.get("retry_after"),
                "label": label,
            }
        )
    return JSONResponse({"queued": len(_faults)})


@app.get("/_faults")
async def list_faults() -> list[dict[str, Any]]:
    return list(_faults)


@app.get("/_faults/served")
async def faults_served() -> list[dict[str, Any]]:
    return _served


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
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        help="a folder of service-account JSON files whose keys may sign assertions",
    )
    args = parser.parse_args(argv)
    _trusted.extend(Path(p) for p in args.trust)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
