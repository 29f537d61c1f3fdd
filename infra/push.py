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
(`_MessagingService._client`, the second private name): a retryable answer (UNAVAILABLE,
QUOTA_EXCEEDED, INTERNAL) comes back to the Celery task, which retries with backoff and
honours Retry-After instead of sleeping inside a worker. `tests/contract/test_fcm.py`
pins both names.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import firebase_admin
import google.auth.transport.requests
import requests
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as google_auth_errors

from infra.settings import Settings, get_settings

OFFLINE_PROJECT = "ridehail-offline"
APP_NAME = "ridehail"
_lock = threading.Lock()


class PushOutcome(StrEnum):
    SENT = "sent"
    GONE = "gone"  # the token is dead (unregistered, invalid): forget it
    RETRY = "retry"  # FCM is busy or failing: try again, after `retry_after` if given
    FAILED = "failed"  # refused for good (e.g. a sender mismatch)


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
        app = firebase_admin.initialize_app(cred, {"httpTimeout": 10}, name=APP_NAME)
        service = messaging._get_messaging_service(app)
        no_retries = requests.adapters.HTTPAdapter(max_retries=0)
        for prefix in ("http://", "https://"):
            service._client.session.mount(prefix, no_retries)
        return app


def ready() -> bool:
    """Make the app and a valid access token now, before a delivery is claimed: a fresh
    process's first send would otherwise do the OAuth exchange (a signed JWT and a round
    trip) between the claim and the push, and a process killed then leaves the push
    claimed and never sent (the chaos run found these). False: FCM's token endpoint is out
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
        "apns-priority": "10" if push.high_priority else "5",
        "apns-push-type": "background" if push.data_only else "alert",
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


def send(token: str, push: Push) -> PushResult:
    """Send `push` to one device token; FCM's answer as an outcome."""
    try:
        name = messaging.send(_message(token, push), app=firebase_app())
    except (messaging.UnregisteredError, messaging.SenderIdMismatchError) as exc:
        if isinstance(exc, messaging.SenderIdMismatchError):
            return PushResult(PushOutcome.FAILED, error="SENDER_ID_MISMATCH")
        return PushResult(PushOutcome.GONE, error="UNREGISTERED")
    except exceptions.InvalidArgumentError:
        return PushResult(PushOutcome.GONE, error="INVALID_ARGUMENT")
    except (
        exceptions.UnavailableError,
        exceptions.ResourceExhaustedError,
        exceptions.InternalError,
        exceptions.DeadlineExceededError,
    ) as exc:
        return PushResult(PushOutcome.RETRY, retry_after=_retry_after(exc), error=exc.code)
    except exceptions.FirebaseError as exc:
        return PushResult(PushOutcome.FAILED, error=exc.code)
    except (requests.ConnectionError, requests.Timeout, google_auth_errors.GoogleAuthError) as exc:
        # FCM or the token endpoint out of reach: nothing was delivered, try again
        return PushResult(PushOutcome.RETRY, error=type(exc).__name__)
    return PushResult(PushOutcome.SENT, message_id=name)
