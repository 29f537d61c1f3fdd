"""The apps' side against the real stack `ridehail run` starts: the TypeScript client kit
(`clients/kit`, `@ridehail/client`) through its own tests (node's test runner), which kill
the API mid-ride (the stack starts it again) and check that nothing is lost; and the
reference web app (`/app`, `clients/app`) in Debian's headless Chromium, a passenger and
a driver in two browsers taking rides as people do."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By

from devtools.browser import DriverPage, PassengerPage, chromium, line, wait
from tests.factories import register

pytestmark = pytest.mark.live_state

KIT = Path(__file__).resolve().parents[2] / "clients" / "kit"


@pytest.mark.timeout(600)
def test_the_kits_own_tests_pass_against_the_stack(stack: dict[str, Any]) -> None:
    assert (KIT / "node_modules" / ".bin" / "tsc").exists(), "run scripts/bootstrap.sh --postgres"
    done = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=540,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "RIDEHAIL_BASE_URL": stack["base"],
            "RIDEHAIL_STACK_LOG": str(stack["data"] / "stack.log"),
        },
    )
    out = done.stdout + done.stderr
    print(out)
    assert done.returncode == 0, out
    counts = dict(re.findall(r"^# (tests|pass|fail|skipped|todo) (\d+)$", out, re.M))
    assert counts == {"tests": "6", "pass": "6", "fail": "0", "skipped": "0", "todo": "0"}, out
    # the API really was killed (every process of it, when there are several), and the
    # stack started it again
    log = (stack["data"] / "stack.log").read_text()
    assert re.search(r"^ridehail: api(-\d+)? exited with -9; restarting$", log, re.M), log[-3000:]


# -- the reference web app in Chromium --------------------------------------------------------
# Two browsers (two profiles: two people), the passenger's and the driver's page at /app.

START = (52.5300, 13.4100)  # where the driver waits
PICKUP = (52.5330, 13.4140)
DROPOFF = (52.5360, 13.4180)


def _email(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:10]}@example.com"


def _standin(stack: dict[str, Any]) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{stack['ports']['stripe']}"
    return list(httpx.get(f"{base}/_config/requests", timeout=10).json())


def _ratings_of(stack: dict[str, Any], user_id: str) -> list[dict[str, Any]]:
    http = httpx.Client(base_url=stack["base"], timeout=10)
    someone = register(http, "passenger", email=_email("reader"))  # type: ignore[arg-type]
    page = http.get(f"/api/v1/ratings/user/{user_id}", headers=someone.headers)
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def _in_order(seen: list[str]) -> bool:
    life = ["requested", "accepted", "arrived", "in_progress", "completed"]
    return [s for s in life if s in seen] == seen


@pytest.mark.timeout(300)
def test_two_browsers_take_a_card_ride_and_the_passenger_sees_every_event_once(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    base = stack["base"]
    with chromium() as one, chromium() as two:
        driver, passenger = DriverPage(one, base), PassengerPage(two, base)
        driver.sign_up(_email("driver"), "Dana Driver")
        passenger.sign_up(_email("passenger"), "Pat Passenger")
        driver.go_online(*START)

        # a card saved through Stripe.js, 3-D Secure passed in the bank's modal; the card
        # number went from the page to Stripe with the publishable key, never to the API
        passenger.save_card("4000002500003155", three_d_secure=True)
        made = [r for r in _standin(stack) if r["path"] == "/v1/payment_methods"]
        assert made
        assert made[-1]["api_key"].startswith("pk_test"), made[-1:]
        assert made[-1]["params"]["card"]["number"] == "4000002500003155"
        assert "4000002500003155" not in (stack["data"] / "stack.log").read_text()

        ride_id = passenger.request(PICKUP, DROPOFF, "card")
        driver.take_offer(ride_id)  # the offer's countdown is on the page, then accepted
        wait(lambda: passenger.status() == "accepted", what="the passenger told")
        # the banner is the foreground notification: a tap opens the ride
        wait(lambda: passenger.banners(), what="a banner")
        passenger.browser.find_element(By.CSS_SELECTOR, "#banners .banner").click()
        assert passenger.browser.execute_script(
            "const r = document.getElementById('ride-panel').getBoundingClientRect();"
            "return r.top >= 0 && r.top < window.innerHeight;"
        )

        # the driver's emulated GPS moves along the street: the marker follows on the
        # passenger's map, fix by fix
        wait(lambda: passenger.driver_marker(), what="the driver's marker")
        for fix in line(START, PICKUP, 3):
            before = passenger.driver_marker()
            driver.drive([fix], pause_s=0)
            wait(
                lambda f=fix: passenger.state().get("driver") == [f[0], f[1]],
                what=f"the marker at {fix}",
            )
            assert passenger.driver_marker() != before

        # the network cut (DevTools offline) while the driver arrives and moves on
        passenger.offline(True)
        wait(lambda: passenger.state()["network"] == "offline", what="the page told")
        driver.step("arrived")
        driver.drive([(PICKUP[0] + 0.0002, PICKUP[1] + 0.0002)])
        time.sleep(1.0)
        assert "arrived" not in passenger.statuses(), "the cut is real: nothing came through"
        passenger.offline(False)
        wait(lambda: "arrived" in passenger.statuses(), timeout=30, what="resumed")
        wait(lambda: passenger.state().get("driver") == [PICKUP[0] + 0.0002, PICKUP[1] + 0.0002])

        driver.step("in_progress")
        driver.drive(line((PICKUP[0] + 0.0002, PICKUP[1] + 0.0002), DROPOFF, 3), pause_s=0.3)
        driver.step("completed")
        wait(lambda: "completed" in passenger.statuses(), what="completed")

        # every event once, in order, on the page and in what it kept
        statuses, fixes = passenger.statuses(), passenger.fixes()
        assert statuses == ["requested", "accepted", "arrived", "in_progress", "completed"]
        assert _in_order(statuses)
        assert len(fixes) == len(set(fixes)) >= 7, fixes  # every move, and the cadence
        assert len(passenger.timeline("status")) == len(statuses)
        assert len(passenger.timeline("location")) == len(fixes)

        # the rating modal after completion; each rating reaches the server
        passenger.rate(5, "smooth ride")
        driver.rate(4)
        got = _ratings_of(stack, driver.state()["userId"])
        assert [(r["stars"], r["comment"]) for r in got] == [(5, "smooth ride")]
        assert [r["stars"] for r in _ratings_of(stack, passenger.state()["userId"])] == [4]

        # paid by card (captured by the worker after completion), and the driver's earnings
        wait(lambda: "Paid" in passenger.text("ride-paid"), timeout=60, what="paid")
        captured = [r for r in _standin(stack) if r["path"].endswith("/capture")]
        assert captured
        assert captured[-1]["status"] == 200
        wait(lambda: driver.text("earned") not in ("-", "$0.00"), what="earnings")
        for page, name in ((passenger, "passenger"), (driver, "driver")):
            assert page.browser.save_screenshot(str(tmp_path / f"{name}.png"))
            errors = [m for m in page.console() if "SEVERE" in m and "favicon" not in m]
            assert not errors, errors


@pytest.mark.timeout(180)
def test_with_streams_blocked_the_passenger_page_polls_and_still_follows_the_ride(
    stack: dict[str, Any],
) -> None:
    base = stack["base"]
    http = httpx.Client(base_url=base, timeout=10)
    driver = register(http, "driver", email=_email("driver"))  # type: ignore[arg-type]
    assert http.post(
        "/api/v1/drivers/me/status", json={"status": "online"}, headers=driver.headers
    ).is_success
    at = {"lat": 52.4700, "lng": 13.3500}

    def ping(lat: float, lng: float) -> None:
        r = http.post(
            "/api/v1/drivers/me/location",
            json={"lat": lat, "lng": lng, "recorded_at": time.time()},
            headers=driver.headers,
        )
        assert r.status_code == 202, r.text

    def step(action: str) -> None:
        r = http.post(f"/api/v1/rides/{ride_id}/{action}", headers=driver.headers)
        assert r.status_code == 200, r.text

    ping(at["lat"], at["lng"])
    ride_id = ""
    with chromium() as browser:
        passenger = PassengerPage(browser, base)
        passenger.block_streams()  # a network that lets requests through, never a stream
        passenger.sign_up(_email("passenger"), "Pat Polling")
        ride_id = passenger.request((52.4710, 13.3510), (52.4800, 13.3600), "cash")
        wait(lambda: passenger.text("mode") == "polling", what="polling")
        assert passenger.state()["mode"] == "polling"
        offers = wait(
            lambda: http.get("/api/v1/drivers/me/offers", headers=driver.headers).json()["items"]
        )
        assert offers[0]["ride_id"] == ride_id
        step("accept")
        wait(lambda: "accepted" in passenger.statuses(), what="accepted, polled")
        ping(52.4705, 13.3505)
        wait(lambda: passenger.state().get("driver") == [52.4705, 13.3505], what="the fix")
        for action in ("arrive", "start", "complete"):
            step(action)
        wait(lambda: "completed" in passenger.statuses(), what="completed, polled")
        statuses = passenger.statuses()
        assert len(statuses) == len(set(statuses)), statuses
        assert _in_order(statuses), statuses
        assert passenger.text("mode") == "polling"  # never streamed: each try was blocked
        assert passenger.timeline("mode") == [passenger.timeline("mode")[0]]
        assert passenger.timeline("mode")[0].endswith("streaming is blocked: polling")
        passenger.rate(3)
        assert [r["stars"] for r in _ratings_of(stack, driver.id)] == [3]


def test_the_app_is_served_in_development_with_its_settings_and_nothing_else(
    stack: dict[str, Any],
) -> None:
    base = stack["base"]
    index = httpx.get(f"{base}/app", timeout=10)
    assert index.status_code == 200
    assert 'href="/app/driver"' in index.text
    for role in ("passenger", "driver"):
        page = httpx.get(f"{base}/app/{role}", timeout=10)
        assert page.status_code == 200
        assert f"/app/assets/{role}.js" in page.text
        policy = page.headers["content-security-policy"]
        assert f"script-src 'self' http://127.0.0.1:{stack['ports']['stripe']}" in policy
        assert httpx.get(f"{base}/app/assets/{role}.js", timeout=10).status_code == 200
    config = httpx.get(f"{base}/app/config.json", timeout=10).json()
    assert config == {
        "stripe_js_url": f"http://127.0.0.1:{stack['ports']['stripe']}/js.stripe.com/v3/",
        "stripe_publishable_key": "pk_test_standin",
        "tile_url": "",
        "tile_attribution": "",
    }
    for path in ("/app/nowhere", "/app/assets/..%2Fpassenger.html", "/app/assets/x.exe"):
        assert httpx.get(f"{base}{path}", timeout=10).status_code == 404, path
    js = httpx.get(config["stripe_js_url"], timeout=10)
    assert js.status_code == 200
    assert "confirmCardSetup" in js.text
