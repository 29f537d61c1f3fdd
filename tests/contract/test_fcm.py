"""Push through firebase-admin against the FCM stand-in: the SDK's real OAuth exchange,
the message as FCM receives it, FCM's error answers mapped to outcomes, and the two
private names of the SDK we rely on (pinned here: an SDK upgrade that moves them fails
this file, not production)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import pytest
from firebase_admin import messaging

from devtools import launcher
from infra import push
from tests.services import free_port


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    port = free_port()
    proc = launcher.start_fcm_standin(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        launcher.stop(proc)


@pytest.fixture
def fcm(
    standin: str, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    monkeypatch.setattr(settings, "fcm_endpoint", standin)
    monkeypatch.setattr(settings, "fcm_credentials", "")
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    httpx.delete(f"{standin}/_requests")
    httpx.delete(f"{standin}/_faults")
    yield standin
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
    assert message["apns"]["headers"] == {
        "apns-priority": "5",
        "apns-push-type": "alert",
        "apns-collapse-id": f"ride-{ride}-status",
    }
    # a second push reuses the access token
    assert push.send("device-token-1", push.Push("a", "b")).outcome is push.PushOutcome.SENT
    assert len(httpx.get(f"{fcm}/_tokens").json()) == 1


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
    assert message["apns"]["headers"]["apns-priority"] == "10"
    assert message["apns"]["headers"]["apns-push-type"] == "background"
    assert message["apns"]["payload"]["aps"]["content-available"] == 1


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


def test_fcm_out_of_reach_is_a_retry(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "fcm_endpoint", f"http://127.0.0.1:{free_port()}")
    result = push.send("device-3", push.Push("t", "b"))
    assert result.outcome is push.PushOutcome.RETRY


def test_the_standin_refuses_a_send_without_a_token_from_its_exchange(standin: str) -> None:
    r = httpx.post(
        f"{standin}/v1/projects/p/messages:send",
        json={"message": {"token": "x"}},
        headers={"Authorization": "Bearer forged"},
    )
    assert r.status_code == 401


def test_a_slow_answer_is_a_push_fcm_took_while_the_sender_waited(fcm: str) -> None:
    r = httpx.post(f"{fcm}/_faults", json={"delay_s": 0.6, "count": 1})
    assert r.status_code == 200
    assert httpx.get(f"{fcm}/_faults").json() == [{"delay_s": 0.6, "token": None}]
    started = time.monotonic()
    assert push.send("device-4", push.Push("t", "b")).outcome is push.PushOutcome.SENT
    assert time.monotonic() - started >= 0.6
    [seen] = _seen(fcm)
    assert (seen["message"]["token"], seen["status"]) == ("device-4", 200)
    assert httpx.get(f"{fcm}/_faults").json() == []


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


def test_ready_is_false_when_fcm_is_out_of_reach(
    fcm: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "fcm_endpoint", f"http://127.0.0.1:{free_port()}")
    assert push.ready() is False
