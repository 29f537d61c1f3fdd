"""Push delivery through firebase-admin (FCM HTTP v1): one message to one device token,
its answer mapped once to an outcome (sent, token gone, retry later, failed).

Real FCM with `RIDEHAIL_FCM_CREDENTIALS` (a service account JSON file). Offline, the SDK
is pointed at the stand-in at `RIDEHAIL_FCM_ENDPOINT` with as little intrusion as we
could manage, keeping its real auth flow:
- the credentials are a generated service account (an RSA key made once per data
  directory) whose `token_uri` is the stand-in's `/token`: google-auth signs a JWT
  assertion and exchanges it there for an access token, as it does with Google;
- `messaging._MessagingService.FCM_URL` (a private name of the SDK) is set to the
  stand-in's `messages:send` URL before the messaging service is created.
In both modes the SDK's own HTTP retries are turned off on the messaging session
(`_MessagingService._client`, the second private name), on every prefix the SDK mounted
(it mounts a retrying adapter for `https://fcm.googleapis.com`, which would win over one
for `https://`): a retryable answer (UNAVAILABLE, QUOTA_EXCEEDED, INTERNAL) comes back to
the Celery task, which retries with backoff and honours Retry-After instead of sleeping
inside a worker, and a send whose answer is late is never sent again by the SDK.
`tests/contract/test_fcm.py` pins both names and the adapter used for the real FCM URL.

At most once: a send whose answer never came (read timeout, connection dropped after the
request went out) may have been delivered, so its outcome is `UNKNOWN` and it is never
sent again. Only a send that provably never left (the connection could not be made) is
retried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import firebase_admin
import google.auth.transport.requests
import requests
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as google_auth_errors
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from infra.settings import Settings, get_settings

OFFLINE_PROJECT = "ridehail-offline"
APP_NAME = "ridehail"
log = logging.getLogger(__name__)
_lock = threading.Lock()


class PushOutcome(StrEnum):
    SENT = "sent"
    GONE = "gone"  # FCM says the token itself is dead or invalid: forget it
    RETRY = "retry"  # FCM took nothing (busy, failing, out of reach): try again later
    FAILED = "failed"  # refused for good (a sender mismatch, a payload FCM rejects)
    UNKNOWN = "unknown"  # the request went out and no answer came: maybe delivered


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: PushOutcome
    message_id: str | None = None
    retry_after: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Push:
    """One push as the app receives it. `data` is what the app routes on when tapped
    (`type`, `ride_id`, `screen`, ...); a `data_only` push wakes the app without showing
    anything itself (an offer the driver app turns into its own alert)."""

    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)
    high_priority: bool = False
    data_only: bool = False
    collapse_key: str | None = None  # a newer push with the same key replaces the older
    ttl_s: int = 3600  # dropped, not shown late, after this


def _offline_account(settings: Settings) -> dict[str, Any]:
    """A service account of our own for the stand-in, its key made once per data dir."""
    path = settings.data_dir / "fcm-offline-service-account.json"
    if path.exists():
        account: dict[str, Any] = json.loads(path.read_text())
        if account.get("token_uri") == f"{settings.fcm_endpoint}/token":
            return account
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": OFFLINE_PROJECT,
        "private_key_id": "offline",
        "private_key": pem,
        "client_email": f"ridehail@{OFFLINE_PROJECT}.iam.gserviceaccount.com",
        "client_id": "0",
        "token_uri": f"{settings.fcm_endpoint}/token",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(account))
    path.chmod(0o600)
    return account


def firebase_app() -> firebase_admin.App:
    """The process's firebase-admin app (made once), with its messaging service ready."""
    with _lock:
        try:
            return firebase_admin.get_app(APP_NAME)
        except ValueError:
            pass
        settings = get_settings()
        if settings.fcm_credentials:
            cred = credentials.Certificate(settings.fcm_credentials)
        else:
            messaging._MessagingService.FCM_URL = (
                f"{settings.fcm_endpoint}/v1/projects/{{0}}/messages:send"
            )
            cred = credentials.Certificate(_offline_account(settings))
        app = firebase_admin.initialize_app(
            cred, {"httpTimeout": settings.fcm_timeout_s}, name=APP_NAME
        )
        service = messaging._get_messaging_service(app)
        session = service._client.session
        # every prefix the SDK mounted, its own `https://fcm.googleapis.com` one included
        # (requests picks the longest matching prefix)
        for prefix in {"http://", "https://", *session.adapters}:
            session.mount(prefix, requests.adapters.HTTPAdapter(max_retries=0))
        return app


def ready() -> bool:
    """Make the app and a valid access token now, before a delivery is claimed: a fresh
    process's first send would otherwise do the OAuth exchange (a signed JWT and a round
    trip) between the claim and the push, and a process killed then leaves the push
    claimed and never sent. False: FCM's token endpoint is out
    of reach, claim nothing and come back."""
    try:
        cred = firebase_app().credential.get_credential()
        if not cred.valid:
            cred.refresh(google.auth.transport.requests.Request())
    except (requests.ConnectionError, requests.Timeout, google_auth_errors.GoogleAuthError):
        return False
    return True


def _message(token: str, push: Push) -> messaging.Message:
    ttl = timedelta(seconds=push.ttl_s)
    apns_headers = {
        # Apple requires 5 for a background (data-only) push and refuses 10 there
        "apns-priority": "10" if push.high_priority and not push.data_only else "5",
        "apns-push-type": "background" if push.data_only else "alert",
        # the TTL on iOS too (else APNs keeps it up to 30 days): an absolute UNIX time
        "apns-expiration": str(int(time.time()) + push.ttl_s),
    }
    if push.collapse_key:
        apns_headers["apns-collapse-id"] = push.collapse_key
    return messaging.Message(
        token=token,
        data=push.data,
        notification=None if push.data_only else messaging.Notification(push.title, push.body),
        android=messaging.AndroidConfig(
            priority="high" if push.high_priority else "normal",
            ttl=ttl,
            collapse_key=push.collapse_key,
        ),
        apns=messaging.APNSConfig(
            headers=apns_headers,
            payload=messaging.APNSPayload(
                aps=messaging.Aps(content_available=True if push.data_only else None)
            ),
        ),
    )


def _retry_after(exc: exceptions.FirebaseError) -> float | None:
    response = getattr(exc, "http_response", None)
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _never_left(cause: BaseException | None) -> bool:
    """True when the request provably never reached FCM: the connection could not be made
    (refused, unresolvable, connect timeout). A read timeout or a connection dropped after
    the request was written may have been delivered."""
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if not isinstance(cause, requests.ConnectionError) or isinstance(cause, requests.Timeout):
        return False
    reason = cause.args[0] if cause.args else None
    inner = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(inner, NewConnectionError | NameResolutionError | ConnectTimeoutError)


def _token_is_invalid(exc: exceptions.InvalidArgumentError) -> bool:
    """FCM's INVALID_ARGUMENT also means a bad payload (too big, a reserved data key, a bad
    TTL): the token is to blame only when FCM names it, by a field violation on
    `message.token` or by its invalid-token message (Firebase's token-management guide)."""
    if "registration token" in str(exc).lower():
        return True
    response = getattr(exc, "http_response", None)
    try:
        details = response.json()["error"].get("details", []) if response is not None else []
    except (ValueError, KeyError, AttributeError):
        return False
    return any(
        v.get("field") == "message.token"
        for d in details
        if isinstance(d, dict)
        for v in d.get("fieldViolations", [])
        if isinstance(v, dict)
    )


def send(token: str, push: Push) -> PushResult:
    """Send `push` to one device token; FCM's answer as an outcome."""
    try:
        name = messaging.send(_message(token, push), app=firebase_app())
    except messaging.UnregisteredError:
        return PushResult(PushOutcome.GONE, error="UNREGISTERED")
    except messaging.SenderIdMismatchError:
        return PushResult(PushOutcome.FAILED, error="SENDER_ID_MISMATCH")
    except messaging.ThirdPartyAuthError as exc:
        log.error("ALERT: APNs or web push refused our credentials (FCM): %s", exc)
        return PushResult(PushOutcome.FAILED, error="THIRD_PARTY_AUTH_ERROR")
    except exceptions.InvalidArgumentError as exc:
        if _token_is_invalid(exc):
            return PushResult(PushOutcome.GONE, error="INVALID_ARGUMENT")
        log.error("ALERT: FCM refused a push's payload (the token is kept): %s", exc)
        return PushResult(PushOutcome.FAILED, error="INVALID_PAYLOAD")
    except (exceptions.UnavailableError, exceptions.DeadlineExceededError) as exc:
        if getattr(exc, "http_response", None) is not None or _never_left(exc.cause):
            # FCM answered "unavailable" (it took nothing), or it was never reached
            return PushResult(PushOutcome.RETRY, retry_after=_retry_after(exc), error=exc.code)
        return PushResult(PushOutcome.UNKNOWN, error=exc.code)
    except (exceptions.ResourceExhaustedError, exceptions.InternalError) as exc:
        return PushResult(PushOutcome.RETRY, retry_after=_retry_after(exc), error=exc.code)
    except exceptions.FirebaseError as exc:
        return PushResult(PushOutcome.FAILED, error=exc.code)
    except google_auth_errors.GoogleAuthError as exc:
        # the token endpoint out of reach or refusing: nothing was sent to FCM
        return PushResult(PushOutcome.RETRY, error=type(exc).__name__)
    except requests.RequestException as exc:
        if _never_left(exc):
            return PushResult(PushOutcome.RETRY, error=type(exc).__name__)
        return PushResult(PushOutcome.UNKNOWN, error=type(exc).__name__)
    return PushResult(PushOutcome.SENT, message_id=name)
