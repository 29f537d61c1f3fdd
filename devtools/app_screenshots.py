"""Screenshots of the reference web app under the simulator, for `docs/`.

    .venv/bin/python -m devtools.app_screenshots [--base-url http://127.0.0.1:8000]

Against a running stack (`make run`): the simulator's fleet drives around the city
centre while, in two headless Chromium windows, a driver waits 3 km north (out of the
fleet's first dispatch wave, so the ride is theirs) and a passenger sees the cars around,
saves a card, requests a ride there, follows the driver (emulated GPS) and rates them.
Writes app-passenger-home.png, app-passenger-ride.png, app-driver-ride.png,
app-driver-offer.png and app-passenger-rating.png under --out (docs/screenshots).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

from devtools.browser import DriverPage, PassengerPage, chromium, line, wait

CENTER = (52.520, 13.405)  # the simulator's city
START = (52.5470, 13.4050)
PICKUP = (52.5490, 13.4090)
DROPOFF = (52.5560, 13.4260)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.app_screenshots", description=__doc__)
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--stripe-base", default="http://127.0.0.1:8420")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    p.add_argument("--drivers", type=int, default=14)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.base_url.rstrip("/")
    sim = subprocess.Popen(
        [sys.executable, "-m", "devtools.simulate", "--base-url", base]
        + ["--drivers", str(args.drivers), "--passengers", "4", "--minutes", "2"]
        + ["--radius-m", "1200", "--stripe-base", args.stripe_base, "--no-progress"]
        + ["--grace-s", "30", "--settle-s", "10", "--seed", "3"],
        stdout=subprocess.DEVNULL,
    )
    try:
        with chromium(1280, 800) as one, chromium(1280, 800) as two:
            driver, passenger = DriverPage(one, base), PassengerPage(two, base)
            tag = uuid.uuid4().hex[:6]
            driver.sign_up(f"dana-{tag}@example.com", "Dana Driver")
            passenger.sign_up(f"pat-{tag}@example.com", "Pat Passenger")
            driver.go_online(*START)
            # the passenger at the centre first: the fleet around, on the map
            passenger.fill("pickup", f"{CENTER[0]}, {CENTER[1]}")
            passenger.browser.execute_script(
                "document.getElementById('pickup').dispatchEvent(new Event('change'))"
            )
            time.sleep(7)  # the nearby cars, asked every 5 s
            passenger.save_card("4242424242424242")
            passenger.browser.save_screenshot(str(args.out / "app-passenger-home.png"))
            ride_id = passenger.request(PICKUP, DROPOFF, "card")
            wait(lambda: (driver.state().get("offer") or {}).get("ride_id") == ride_id, 30)
            driver.browser.save_screenshot(str(args.out / "app-driver-offer.png"))
            driver.take_offer(ride_id)
            path = line(START, PICKUP, 4)
            driver.drive(path[:2], pause_s=1.5)
            wait(lambda: passenger.text("ride-eta"), 20)
            passenger.browser.save_screenshot(str(args.out / "app-passenger-ride.png"))
            driver.drive(path[2:], pause_s=1.5)
            driver.step("arrived")
            driver.step("in_progress")
            trip = line(PICKUP, DROPOFF, 6)
            driver.drive(trip[:3], pause_s=1.5)
            driver.browser.save_screenshot(str(args.out / "app-driver-ride.png"))
            driver.drive(trip[3:], pause_s=1.5)
            driver.step("completed")
            wait(lambda: passenger.visible("rating-modal"), 30)
            passenger.browser.find_element("css selector", "#stars button[data-stars='5']").click()
            time.sleep(0.5)
            passenger.browser.save_screenshot(str(args.out / "app-passenger-rating.png"))
            passenger.rate(5, "smooth ride")
            driver.rate(5)
    finally:
        sim.terminate()
        sim.wait(timeout=60)
    for shot in sorted(args.out.glob("app-*.png")):
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
