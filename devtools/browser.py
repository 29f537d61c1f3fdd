"""The reference web app (`/app`) driven in Debian's headless Chromium, as a person uses it.

One `AppPage` per browser (each its own profile: two people, two sessions), with what the
DevTools protocol lets a test do to a phone: emulate the Geolocation fix, cut the network,
block the event streams. Used by the browser tests and by `python -m devtools.app_screenshots`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

T = TypeVar("T")
PASSWORD = "correct horse battery"


def wait(fn: Callable[[], T], timeout: float = 20.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    value = fn()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s ({value!r})")
        time.sleep(0.1)
        value = fn()
    return value


@contextmanager
def chromium(width: int = 1280, height: int = 860) -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-quic",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # a page in the background keeps its timers (two windows side by side)
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class AppPage:
    """One role's page in one browser."""

    def __init__(self, browser: webdriver.Chrome, base: str, role: str) -> None:
        self.browser = browser
        self.base = base
        self.role = role
        browser.execute_cdp_cmd("Network.enable", {})

    # -- the phone ----------------------------------------------------------------------

    def allow_location(self) -> None:
        self.browser.execute_cdp_cmd(
            "Browser.grantPermissions", {"origin": self.base, "permissions": ["geolocation"]}
        )

    def move_to(self, lat: float, lng: float) -> None:
        """The device's Geolocation fix (what a phone's GPS would give the page)."""
        self.browser.execute_cdp_cmd(
            "Emulation.setGeolocationOverride",
            {"latitude": lat, "longitude": lng, "accuracy": 5},
        )

    def offline(self, cut: bool) -> None:
        """DevTools' offline switch: every request fails, open connections are dropped."""
        self.browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": cut, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def block_streams(self) -> None:
        """A network that lets requests through but never an event stream."""
        self.browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/events*"]})

    # -- the page -----------------------------------------------------------------------

    def open(self) -> None:
        self.browser.get(f"{self.base}/app/{self.role}")

    def el(self, ident: str) -> Any:
        return self.browser.find_element(By.ID, ident)

    def visible(self, ident: str) -> bool:
        return bool(self.el(ident).is_displayed())

    def click(self, ident: str) -> None:
        """Click it, the page's last message cleared first (what follows is this click's)."""
        wait(lambda: self.el(ident).is_displayed() and self.el(ident).is_enabled(), what=ident)
        self.browser.execute_script("document.getElementById('message').textContent = ''")
        self.el(ident).click()

    def fill(self, ident: str, text: str) -> None:
        field = self.el(ident)
        field.clear()
        field.send_keys(text)

    def state(self) -> dict[str, Any]:
        return dict(self.browser.execute_script("return window.ridehailApp || {}") or {})

    def text(self, ident: str) -> str:
        return str(self.el(ident).text)

    def message(self) -> str:
        return self.text("message")

    def sign_up(self, email: str, name: str) -> None:
        self.open()
        wait(lambda: self.visible("auth"), what="the sign-in form")
        self.fill("name", name)
        self.fill("email", email)
        self.fill("password", PASSWORD)
        self.click("signup")
        wait(lambda: self.visible("main") or self.message(), what="signed up")
        assert self.visible("main"), self.message()

    def banners(self) -> list[str]:
        return [b.text for b in self.browser.find_elements(By.CSS_SELECTOR, "#banners .banner")]

    def timeline(self, kind: str) -> list[str]:
        return [
            li.text
            for li in self.browser.find_elements(By.CSS_SELECTOR, f"#timeline li[data-kind={kind}]")
        ]

    def rate(self, stars: int, comment: str = "") -> None:
        wait(lambda: self.visible("rating-modal"), timeout=30, what="the rating modal")
        self.browser.find_element(By.CSS_SELECTOR, f"#stars button[data-stars='{stars}']").click()
        boxes = self.browser.find_elements(By.CSS_SELECTOR, "#rating-tags input")
        if boxes:
            boxes[0].click()
        if comment:
            self.fill("rating-comment", comment)
        self.click("rating-submit")
        wait(lambda: not self.visible("rating-modal"), what="the rating sent")

    def console(self) -> list[str]:
        return [str(e.get("message")) for e in self.browser.get_log("browser")]


class PassengerPage(AppPage):
    def __init__(self, browser: webdriver.Chrome, base: str) -> None:
        super().__init__(browser, base, "passenger")

    def save_card(self, number: str, three_d_secure: bool = False) -> None:
        wait(lambda: self.browser.find_elements(By.CSS_SELECTOR, "[data-stripe=number]"))
        for field, value in (("number", number), ("exp", "12 / 34"), ("cvc", "123")):
            box = self.browser.find_element(By.CSS_SELECTOR, f"[data-stripe={field}]")
            box.clear()
            box.send_keys(value)
        before = len(Select(self.el("card-select")).options)
        self.click("save-card")
        if three_d_secure:  # the bank's challenge, as Stripe.js shows it
            wait(lambda: self.browser.find_elements(By.ID, "__stripe-3ds-complete"), what="3DS")
            self.click("__stripe-3ds-complete")
        wait(
            lambda: len(Select(self.el("card-select")).options) > before or self.message(),
            what="the card saved",
        )
        assert len(Select(self.el("card-select")).options) > before, self.message()

    def request(self, pickup: tuple[float, float], dropoff: tuple[float, float], pay: str) -> str:
        self.fill("pickup", f"{pickup[0]}, {pickup[1]}")
        self.fill("dropoff", f"{dropoff[0]}, {dropoff[1]}")
        Select(self.el("payment")).select_by_value(pay)
        self.click("request")
        ride_id = wait(lambda: self.state().get("rideId") or self.message(), what="the ride")
        assert self.state().get("rideId"), self.message()
        return str(ride_id)

    def status(self) -> str:
        return str(self.el("ride-status").get_attribute("data-status") or "")

    def statuses(self) -> list[str]:
        return [e["key"] for e in self.state().get("events", []) if e["event"] == "status"]

    def fixes(self) -> list[str]:
        return [e["key"] for e in self.state().get("events", []) if e["event"] == "location"]

    def driver_marker(self) -> tuple[float, float] | None:
        """Where the driver's marker is drawn: its centre on the screen, in pixels."""
        found = self.browser.execute_script(
            "const m = document.querySelector('#map path.driver-marker');"
            "if (!m) return null; const r = m.getBoundingClientRect();"
            "return [r.x + r.width / 2, r.y + r.height / 2];"
        )
        return (float(found[0]), float(found[1])) if found else None


class DriverPage(AppPage):
    def __init__(self, browser: webdriver.Chrome, base: str) -> None:
        super().__init__(browser, base, "driver")

    def go_online(self, lat: float, lng: float) -> None:
        self.allow_location()
        self.move_to(lat, lng)
        self.click("online")
        wait(lambda: self.state().get("online"), what="online")
        wait(lambda: self.state().get("reported", 0) > 0, what="the first fix sent")

    def take_offer(self, ride_id: str) -> None:
        wait(
            lambda: (self.state().get("offer") or {}).get("ride_id") == ride_id,
            timeout=30,
            what="the offer",
        )
        assert self.text("offer-countdown").endswith(" s")
        self.click("accept")
        wait(lambda: self.state().get("status") == "accepted", what="accepted")

    def step(self, expect: str) -> None:
        self.click("step")
        wait(lambda: self.state().get("status") == expect or self.message(), what=expect)
        assert self.state().get("status") == expect, self.message()

    def drive(self, path: list[tuple[float, float]], pause_s: float = 1.0) -> None:
        """Move along `path` at a car's pace, the page reporting each fix."""
        for lat, lng in path:
            before = int(self.state().get("reported", 0))

            def sent(before: int = before) -> bool:
                return int(self.state().get("reported", 0)) > before

            self.move_to(lat, lng)
            wait(sent, what=f"the fix at {lat}, {lng} sent")
            time.sleep(pause_s)


def line(
    start: tuple[float, float], end: tuple[float, float], steps: int
) -> list[tuple[float, float]]:
    """Points from start (excluded) to end (included)."""
    return [
        (
            round(start[0] + (end[0] - start[0]) * i / steps, 6),
            round(start[1] + (end[1] - start[1]) * i / steps, 6),
        )
        for i in range(1, steps + 1)
    ]
