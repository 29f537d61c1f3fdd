"""Push through firebase-admin against the FCM stand-in: the SDK's real OAuth exchange,
the message as FCM receives it, FCM's error answers mapped to outcomes, and the two
private names of the SDK we rely on (pinned here: an SDK upgrade that moves them fails
this file, not production). The protocol tests at the end speak to the token endpoint
and `messages:send` directly, with what Google documents as its answers.

With `RIDEHAIL_FCM_CREDENTIALS` (a service account JSON file of a test project) and
`RIDEHAIL_FCM_TEST_TOKEN` (a registration token of a device of that project) set, the
protocol tests and `test_a_push_is_sent` run against Google instead, and those that need
the stand-in's records or faults (`standin_only`) are skipped: that keeps the stand-in
honest.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from firebase_admin import messaging

from devtools import launcher
from infra import push
from tests.services import free_port

REAL_ACCOUNT_FILE = os.environ.get("RIDEHAIL_FCM_CREDENTIALS", "")
REAL_DEVICE = os.environ.get("RIDEHAIL_FCM_TEST_TOKEN", "")
REAL = bool(REAL_ACCOUNT_FILE and REAL_DEVICE)


@pytest.fixture(autouse=True)
def _only_where_it_can_run(request: pytest.FixtureRequest) -> None:
    if REAL and request.node.get_closest_marker("standin_only"):
        pytest.skip("needs the stand-in's records or faults")


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder whose service accounts the stand-in trusts (as the data folder is for
    `make run`): the product's offline account is made here, and a second one for the
    raw protocol tests below."""
    folder = tmp_path_factory.mktemp("fcm-trust")
    (folder / "raw-account.json").write_text(json.dumps(RAW_ACCOUNT))
    return folder


@pytest.fixture(scope="module")
def standin(trusted: Path) -> Iterator[str]:
    port = free_port()
    proc = launcher.start_fcm_standin(port, trust=trusted)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        launcher.stop(proc)


@pytest.fixture
def fcm(
    standin: str, settings: Any, monkeypatch: pytest.MonkeyPatch, trusted: Path
) -> Iterator[str]:
    monkeypatch.setattr(settings, "fcm_endpoint", standin)
    monkeypatch.setattr(settings, "fcm_credentials", REAL_ACCOUNT_FILE if REAL else "")
    if REAL:  # an offline app made earlier in this process pointed the SDK elsewhere
        real_url = "https://fcm.googleapis.com/v1/projects/{0}/messages:send"
        monkeypatch.setattr(messaging._MessagingService, "FCM_URL", real_url)
    monkeypatch.setattr(settings, "data_dir", trusted)
    httpx.delete(f"{standin}/_requests")
    httpx.delete(f"{standin}/_faults")
    _forget_app()  # one made earlier in this process (the suite's worker) points elsewhere
    yield standin
    _forget_app()


def _forget_app() -> None:
    try:
        firebase_admin.delete_app(firebase_admin.get_app(push.APP_NAME))
    except ValueError:
        pass


def _seen(fcm: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{fcm}/_requests").json())


def _faults(fcm: str, *errors: str, retry_after: int | None = None) -> None:
    r = httpx.post(f"{fcm}/_faults", json={"errors": list(errors), "retry_after": retry_after})
    assert r.status_code == 200, r.text


def test_the_sdks_private_names_we_rely_on_are_there() -> None:
    assert "{0}" in messaging._MessagingService.FCM_URL
    assert hasattr(messaging, "_get_messaging_service")


@pytest.mark.standin_only
def test_a_push_reaches_fcm_through_the_sdks_own_oauth_exchange(fcm: str) -> None:
    ride = "d48eb6b9-0000-4000-8000-000000000001"
    result = push.send(
        "device-token-1",
        push.Push(
            title="Your driver is on the way",
            body="Dan, silver Golf, B-RH 123",
            data={"type": "driver_assigned", "ride_id": ride, "screen": "ride"},
            collapse_key=f"ride-{ride}-status",
            ttl_s=600,
        ),
    )
    assert result.outcome is push.PushOutcome.SENT
    assert result.message_id is not None
    assert result.message_id.startswith(f"projects/{push.OFFLINE_PROJECT}/")
    exchanges = httpx.get(f"{fcm}/_tokens").json()
    assert [e["iss"] for e in exchanges] == [
        f"ridehail@{push.OFFLINE_PROJECT}.iam.gserviceaccount.com"
    ]
    [sent] = _seen(fcm)
    message = sent["message"]
    assert sent["project"] == push.OFFLINE_PROJECT
    assert message["token"] == "device-token-1"
    assert message["notification"] == {
        "title": "Your driver is on the way",
        "body": "Dan, silver Golf, B-RH 123",
    }
    assert message["data"] == {"type": "driver_assigned", "ride_id": ride, "screen": "ride"}
    assert message["android"] == {
        "priority": "normal",
        "ttl": "600s",
        "collapse_key": f"ride-{ride}-status",
    }
    expires = int(message["apns"]["headers"].pop("apns-expiration"))
    assert time.time() + 590 <= expires <= time.time() + 600  # the TTL, on iOS too
    assert message["apns"]["headers"] == {
        "apns-priority": "5",
        "apns-push-type": "alert",
        "apns-collapse-id": f"ride-{ride}-status",
    }
    # a second push reuses the access token
    assert push.send("device-token-1", push.Push("a", "b")).outcome is push.PushOutcome.SENT
    assert len(httpx.get(f"{fcm}/_tokens").json()) == 1


@pytest.mark.standin_only
def test_a_data_only_high_priority_push_for_an_app_in_the_background(fcm: str) -> None:
    offer = push.Push(
        title="New ride offer",
        body="",
        data={"type": "offer", "ride_id": "r1", "expires_at": "2026-12-02T10:00:15Z"},
        high_priority=True,
        data_only=True,
        ttl_s=15,
    )
    assert push.send("driver-token", offer).outcome is push.PushOutcome.SENT
    message = _seen(fcm)[0]["message"]
    assert "notification" not in message
    assert message["android"] == {"priority": "high", "ttl": "15s"}
    # Apple refuses priority 10 for a background push: 5, whatever Android gets
    assert message["apns"]["headers"]["apns-priority"] == "5"
    assert message["apns"]["headers"]["apns-push-type"] == "background"
    assert message["apns"]["payload"]["aps"]["content-available"] == 1


@pytest.mark.standin_only
@pytest.mark.parametrize(
    ("token", "fault", "outcome", "error"),
    [
        ("unregistered-abc", None, push.PushOutcome.GONE, "UNREGISTERED"),
        ("invalid-abc", None, push.PushOutcome.GONE, "INVALID_ARGUMENT"),
        ("device-2", "UNAVAILABLE", push.PushOutcome.RETRY, "UNAVAILABLE"),
        ("device-2", "QUOTA_EXCEEDED", push.PushOutcome.RETRY, "RESOURCE_EXHAUSTED"),
        ("device-2", "INTERNAL", push.PushOutcome.RETRY, "INTERNAL"),
        ("device-2", "SENDER_ID_MISMATCH", push.PushOutcome.FAILED, "SENDER_ID_MISMATCH"),
    ],
)
def test_fcms_answers_become_outcomes_without_retries_inside_the_sdk(
    fcm: str, token: str, fault: str | None, outcome: push.PushOutcome, error: str
) -> None:
    if fault:
        _faults(fcm, fault, retry_after=7)
    result = push.send(token, push.Push("t", "b"))
    assert (result.outcome, result.error) == (outcome, error)
    if fault in ("UNAVAILABLE", "QUOTA_EXCEEDED"):
        assert result.retry_after == 7.0  # FCM's Retry-After, for the task's countdown
    assert len(_seen(fcm)) == 1  # one request: the SDK did not retry on its own
    # the fault was one answer: the next push goes through
    if fault:
        assert push.send(token, push.Push("t", "b")).outcome is push.PushOutcome.SENT


@pytest.mark.standin_only
def test_fcm_out_of_reach_is_a_retry(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "fcm_endpoint", f"http://127.0.0.1:{free_port()}")
    result = push.send("device-3", push.Push("t", "b"))
    assert result.outcome is push.PushOutcome.RETRY


@pytest.mark.standin_only
def test_the_standin_refuses_a_send_without_a_token_from_its_exchange(standin: str) -> None:
    r = httpx.post(
        f"{standin}/v1/projects/p/messages:send",
        json={"message": {"token": "x"}},
        headers={"Authorization": "Bearer forged"},
    )
    assert r.status_code == 401


@pytest.mark.standin_only
def test_a_slow_answer_is_a_push_fcm_took_while_the_sender_waited(fcm: str) -> None:
    r = httpx.post(f"{fcm}/_faults", json={"delay_s": 0.6, "count": 1})
    assert r.status_code == 200
    assert httpx.get(f"{fcm}/_faults").json() == [{"delay_s": 0.6, "token": None, "label": None}]
    started = time.monotonic()
    assert push.send("device-4", push.Push("t", "b")).outcome is push.PushOutcome.SENT
    assert time.monotonic() - started >= 0.6
    [seen] = _seen(fcm)
    assert (seen["message"]["token"], seen["status"]) == ("device-4", 200)
    assert httpx.get(f"{fcm}/_faults").json() == []


@pytest.mark.standin_only
def test_an_answer_that_never_comes_is_unknown_and_never_sent_again(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most once: FCM took the push and answers after our timeout. The outcome is
    `unknown` (maybe delivered), and neither the SDK nor we send it a second time."""
    monkeypatch.setattr(settings, "fcm_timeout_s", 0.5)
    httpx.post(f"{fcm}/_faults", json={"delay_s": 2, "count": 1}).raise_for_status()
    result = push.send("device-6", push.Push("t", "b"))
    assert result.outcome is push.PushOutcome.UNKNOWN
    time.sleep(2.5)  # the late answer has come and gone: nothing was sent again meanwhile
    assert [(s["message"]["token"], s["status"]) for s in _seen(fcm)] == [("device-6", 200)]


@pytest.mark.standin_only
def test_a_payload_fcm_refuses_keeps_the_token(fcm: str) -> None:
    """FCM says INVALID_ARGUMENT for a bad payload too (here a reserved data key): the
    token is not to blame and must not be forgotten."""
    result = push.send("device-7", push.Push("t", "b", data={"from": "us"}))
    assert (result.outcome, result.error) == (push.PushOutcome.FAILED, "INVALID_PAYLOAD")
    assert [s["status"] for s in _seen(fcm)] == [400]


def test_no_adapter_of_the_sdk_retries_on_the_real_fcm_url(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Against Google the SDK mounts a retrying adapter for `https://fcm.googleapis.com`
    (500/503 up to 4 times, read errors once): a more specific prefix than `https://`. The
    session used for the real FCM URL must retry nothing."""
    account = push._offline_account(settings)  # any service account: nothing is sent
    key = tmp_path / "service-account.json"
    key.write_text(json.dumps(account))
    monkeypatch.setattr(settings, "fcm_credentials", str(key))
    monkeypatch.setattr(
        messaging._MessagingService,
        "FCM_URL",
        "https://fcm.googleapis.com/v1/projects/{0}/messages:send",
    )
    service = messaging._get_messaging_service(push.firebase_app())
    url = service._fcm_url
    assert url.startswith("https://fcm.googleapis.com/")
    adapter = service._client.session.get_adapter(url)
    assert adapter.max_retries.total == 0
    assert not adapter.max_retries.status_forcelist


@pytest.mark.standin_only
def test_ready_fetches_the_access_token_so_the_send_itself_is_one_request(fcm: str) -> None:
    """A delivery is claimed only once the process can send at once: its first push must
    not start with the OAuth exchange (a process killed there would leave the push
    claimed and never sent)."""
    assert httpx.get(f"{fcm}/_tokens").json() == []
    assert push.ready() is True
    assert len(httpx.get(f"{fcm}/_tokens").json()) == 1
    assert push.ready() is True  # still valid: no second exchange
    assert push.send("device-5", push.Push("t", "b")).outcome is push.PushOutcome.SENT
    assert len(httpx.get(f"{fcm}/_tokens").json()) == 1


@pytest.mark.standin_only
def test_ready_is_false_when_fcm_is_out_of_reach(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "fcm_endpoint", f"http://127.0.0.1:{free_port()}")
    assert push.ready() is False


# --- the stand-in answers as FCM does (each of these is Google's documented behaviour) ---

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
RAW_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RAW_ACCOUNT = {
    "type": "service_account",
    "project_id": "proj-a",
    "private_key_id": "raw",
    "private_key": RAW_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
    "client_email": "sa@proj-a.iam.gserviceaccount.com",
}


@dataclass(frozen=True)
class Google:
    """Where the protocol tests speak: the stand-in, or Google with a real account."""

    token_uri: str
    send_url: str  # with {project}
    account: dict[str, Any]
    key: Any
    device: str

    @property
    def project(self) -> str:
        return str(self.account["project_id"])


@pytest.fixture
def google(standin: str) -> Google:
    if REAL:
        with open(REAL_ACCOUNT_FILE) as f:
            account = json.load(f)
        key = serialization.load_pem_private_key(account["private_key"].encode(), None)
        send = "https://fcm.googleapis.com/v1/projects/{project}/messages:send"
        return Google(account["token_uri"], send, account, key, REAL_DEVICE)
    send = f"{standin}/v1/projects/{{project}}/messages:send"
    return Google(f"{standin}/token", send, RAW_ACCOUNT, RAW_KEY, "device-token-a")


def _assertion(
    iss: str, scope: str = SCOPE, lifetime: int = 3600, aud: str = "", key: Any = None
) -> str:
    """A service account's assertion, signed RS256 as google-auth signs it."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    now = int(time.time())
    claims = {"iss": iss, "scope": scope, "aud": aud, "iat": now, "exp": now + lifetime}
    head = part(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "raw"}).encode())
    body = part(json.dumps(claims).encode())
    signer = key or RAW_KEY
    signature = signer.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{part(signature)}"


def _exchange(g: Google, **claims: Any) -> httpx.Response:
    iss = claims.pop("iss", g.account["client_email"])
    claims.setdefault("key", g.key)
    assertion = _assertion(iss, aud=g.token_uri, **claims)
    return httpx.post(
        g.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )


def _send(g: Google, body: Any, project: str | None = None, **claims: Any) -> httpx.Response:
    """POST `body` to messages:send; the word DEVICE in it stands for the test device."""
    token = _exchange(g, **claims).json()["access_token"]
    url = g.send_url.format(project=project or g.project)
    headers = {"Authorization": f"Bearer {token}"}
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers=headers)
    raw = json.dumps(body).replace("DEVICE", g.device)
    return httpx.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})


def test_the_token_endpoint_refuses_an_assertion_no_trusted_key_signed(google: Google) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = _exchange(google, key=stranger)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    unknown = _exchange(
        google, iss=f"nobody-{os.getpid()}@{google.project}.iam.gserviceaccount.com"
    )
    assert unknown.status_code == 400


def test_the_token_endpoint_refuses_a_long_lived_assertion_and_says_why(google: Google) -> None:
    r = _exchange(google, lifetime=7200)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    assert "short-lived" in r.json()["error_description"]
    assert _exchange(google).status_code == 200


def test_a_token_without_the_messaging_scope_cannot_send(google: Google) -> None:
    r = _send(google, {"message": {"token": "DEVICE"}}, scope="openid")
    assert (r.status_code, r.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_a_send_to_another_project_is_refused(google: Google) -> None:
    r = _send(google, {"message": {"token": "DEVICE"}}, project=f"{google.project}-not-ours")
    assert (r.status_code, r.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", ""),
        ({"message": {"token": "DEVICE", "colour": "red"}}, "message"),
        ({"message": {"token": "no spaces in a token"}}, "message.token"),
        ({"message": {"token": "DEVICE", "data": {"from": "x"}}}, "message.data[0].key"),
        ({"message": {"token": "DEVICE", "data": {"gcm.x": "1"}}}, "message.data[0].key"),
        ({"message": {"token": "DEVICE", "data": {"k": "v" * 4100}}}, "message"),
        (
            {"message": {"token": "DEVICE", "android": {"ttl": "ten"}}},
            "message.android.ttl",
        ),
    ],
)
def test_a_malformed_message_is_invalid_argument_naming_the_field(
    google: Google, body: Any, field: str
) -> None:
    r = _send(google, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    violations = [
        v["field"] for d in error.get("details", []) for v in d.get("fieldViolations", [])
    ]
    assert violations == [field]


def test_validate_only_checks_and_sends_nothing(google: Google, standin: str) -> None:
    httpx.delete(f"{standin}/_requests")
    r = _send(google, {"message": {"token": "DEVICE"}, "validate_only": True})
    assert r.json() == {"name": f"projects/{google.project}/messages/fake_message_id"}
    if not REAL:
        assert httpx.get(f"{standin}/_requests").json() == []
    bad = _send(google, {"message": {"token": "x y"}, "validate_only": True})
    assert bad.status_code == 400


def test_a_push_is_sent(fcm: str) -> None:
    """One push through the product's own code, to the test device (Google, or the
    stand-in)."""
    device = REAL_DEVICE or "device-token-9"
    result = push.send(device, push.Push("ridehail contract test", "ignore me", ttl_s=60))
    assert result.outcome is push.PushOutcome.SENT, result
    assert result.message_id is not None
    assert result.message_id.startswith("projects/")


@pytest.mark.standin_only
def test_third_party_auth_error_is_a_failure_not_a_dead_token(fcm: str) -> None:
    """APNs refused our credentials (401). google-auth takes any 401 for an expired access
    token: it fetches a new one and sends again, twice at most (safe: FCM took nothing),
    and FCM answers the same each time."""
    _faults(fcm, *["THIRD_PARTY_AUTH_ERROR"] * 3)
    result = push.send("device-token-8", push.Push("t", "b"))
    assert (result.outcome, result.error) == (push.PushOutcome.FAILED, "THIRD_PARTY_AUTH_ERROR")
    assert [s["status"] for s in _seen(fcm)] == [401, 401, 401]
