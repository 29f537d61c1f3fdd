"""The ops page in a real headless Chromium (Debian's chromium and chromedriver) against a
real uvicorn process: an admin signs in, drivers move on the canvas as they ping, the
counts, queues and alerts fill in; a screenshot is taken and its pixels checked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from sqlalchemy import text

from devtools.browser import chromium
from infra.db import get_engine, session_scope, utcnow
from infra.users import create_user
from tests.factories import PASSWORD, Account, advance, register, request_ride
from tests.services import running_api
from tests.wait import until


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running_api({"RIDEHAIL_SSE_KEEPALIVE_S": "1"}) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium(1400, 1000) as driver:
        yield driver


def _ping(http: httpx.Client, d: Account, lat: float, lng: float) -> None:
    r = http.post(
        "/api/v1/drivers/me/location",
        json={"lat": lat, "lng": lng, "recorded_at": time.time(), "speed": 9.0},
        headers=d.headers,
    )
    assert r.status_code == 202, r.text


def _opened(browser: webdriver.Chrome, base: str) -> None:
    browser.get(f"{base}/ops")
    browser.find_element(By.ID, "email").send_keys("ops@example.com")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "signin-button").click()
    until(lambda: browser.find_element(By.ID, "dashboard").is_displayed(), timeout=20)
    until(lambda: browser.find_element(By.ID, "live").text == "live", timeout=20)


def _driver_on_page(browser: webdriver.Chrome, driver_id: str) -> Any:
    return browser.execute_script(
        "const d = window.opsState.drivers.get(arguments[0]); return d ? [d.lat, d.lng] : null;",
        driver_id,
    )


def _pixels(browser: webdriver.Chrome, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the map's canvas have this colour."""
    return int(
        browser.execute_script(
            """
            const c = document.getElementById('map');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
              if (data[i] === arguments[0] && data[i + 1] === arguments[1]
                  && data[i + 2] === arguments[2]) n++;
            }
            return n;
            """,
            *rgb,
        )
    )


def test_the_ops_page_shows_drivers_moving_and_the_counts(
    db: None, api: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    with session_scope() as session:
        create_user(session, email="ops@example.com", password=PASSWORD, name="Ops", role="admin")
    http = httpx.Client(base_url=api, timeout=10)
    free, busy = register(http, "driver"), register(http, "driver")  # type: ignore[arg-type]
    for d in (free, busy):
        assert (
            http.post(
                "/api/v1/drivers/me/status", json={"status": "online"}, headers=d.headers
            ).status_code
            == 200
        )
    p = register(http, "passenger")  # type: ignore[arg-type]
    ride = request_ride(http, p)  # type: ignore[arg-type]
    advance(http, ride["id"], busy, "accept")  # type: ignore[arg-type]
    with get_engine().begin() as conn:  # a driver whose average fell under the line
        conn.execute(
            text(
                "INSERT INTO rating_alerts (id, user_id, average, count, created_at) "
                "VALUES (gen_random_uuid(), :u, 3.6, 12, :t)"
            ),
            {"u": busy.id, "t": utcnow()},
        )

    # a wrong password is refused on the page, then the admin signs in
    browser.get(f"{api}/ops")
    browser.find_element(By.ID, "email").send_keys("ops@example.com")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    browser.find_element(By.ID, "signin-button").click()
    until(lambda: "Wrong" in browser.find_element(By.ID, "signin-error").text, timeout=10)
    _opened(browser, api)

    # the drivers move: each ping shows on the page, from the admin stream
    lat, lng = 52.5200, 13.4050
    for step in range(4):
        _ping(http, free, lat + step * 0.0004, lng + step * 0.0006)
        _ping(http, busy, 52.5100 - step * 0.0004, 13.4300)
        expected = [round(lat + step * 0.0004, 6), round(lng + step * 0.0006, 6)]
        until(
            lambda e=expected: (
                (at := _driver_on_page(browser, free.id))
                and [round(at[0], 6), round(at[1], 6)] == e
            ),
            timeout=10,
        )
        time.sleep(1.0)  # a car's pace between fixes (faster is refused as a jump)
    assert browser.execute_script("return window.opsState.drivers.size") == 2
    assert browser.execute_script("return window.opsState.events") >= 8

    # the counts, queues and alerts from the overview
    def table(name: str) -> str:
        return browser.find_element(By.ID, name).text

    until(lambda: "accepted" in table("rides-by-status"), timeout=10)
    assert "pending" in table("payments-by-status") or "no payments" in table("payments-by-status")
    for queue in ("payments", "notifications", "promotions", "default"):
        assert queue in table("queues")
    assert "3.60" in table("alerts")
    assert "2 drivers seen, 1 rides under way" in browser.find_element(By.ID, "map-counts").text

    # the picture: a free driver in green and the busy one in orange on the canvas
    until(lambda: _pixels(browser, (0x2E, 0x7D, 0x32)) > 20, timeout=5)
    assert _pixels(browser, (0xEF, 0x6C, 0x00)) > 20
    shot = tmp_path / "ops.png"
    assert browser.save_screenshot(str(shot))
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == tuple(
        browser.execute_script(
            "return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]"
        )
    )
    http.close()


def test_the_page_is_for_admins_only(db: None, api: str, browser: webdriver.Chrome) -> None:
    http = httpx.Client(base_url=api, timeout=10)
    passenger = register(http, "passenger")  # type: ignore[arg-type]
    assert http.get("/api/v1/admin/overview", headers=passenger.headers).status_code == 403
    assert http.get("/api/v1/admin/overview").status_code == 401
    browser.get(f"{api}/ops")
    browser.find_element(By.ID, "email").send_keys(passenger.email)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "signin-button").click()
    until(lambda: "admins" in browser.find_element(By.ID, "signin-error").text, timeout=10)
    assert not browser.find_element(By.ID, "dashboard").is_displayed()
    http.close()
