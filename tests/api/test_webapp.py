"""`/app`, the reference web app's files: served in development only, from the built
directory, with a policy that lets the page load nothing but itself, Stripe.js and tiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.settings import Settings, get_settings


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    for page in ("index.html", "passenger.html", "driver.html"):
        (tmp_path / page).write_text(f"<!doctype html><title>{page}</title>")
    (tmp_path / "assets" / "passenger.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not an asset")
    return tmp_path


@pytest.fixture
def with_settings(client: TestClient) -> Iterator[object]:
    def use(**values: object) -> None:
        settings = Settings(**values)  # type: ignore[arg-type]
        client.app.dependency_overrides[get_settings] = lambda: settings  # type: ignore[attr-defined]

    yield use
    client.app.dependency_overrides.pop(get_settings, None)  # type: ignore[attr-defined]


def test_the_pages_and_assets_are_served_with_their_policy(
    client: TestClient, with_settings: object, built: Path
) -> None:
    with_settings(  # type: ignore[operator]
        environment="development",
        app_dir=built,
        app_tile_url="https://{s}.tile.example.org/{z}/{x}/{y}.png",
        stripe_api_base="http://127.0.0.1:8420",
    )
    page = client.get("/app/driver")
    assert page.status_code == 200
    assert "driver.html" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' http://127.0.0.1:8420" in policy  # the stand-in's Stripe.js
    assert "img-src 'self' data: https://a.tile.example.org" in policy
    assert "object-src 'none'" in policy
    assert client.get("/app").status_code == 200
    asset = client.get("/app/assets/passenger.js")
    assert asset.status_code == 200
    assert asset.text == "console.log(1)"
    for path in ("/app/secret.txt", "/app/assets/..%2Fsecret.txt", "/app/assets/secret.txt"):
        assert client.get(path).status_code == 404, path


def test_with_stripe_configured_pages_load_stripes_own_stripe_js(
    client: TestClient, with_settings: object, built: Path
) -> None:
    with_settings(  # type: ignore[operator]
        environment="development",
        app_dir=built,
        stripe_api_key="sk_test_x",
        stripe_publishable_key="pk_test_y",
    )
    config = client.get("/app/config.json").json()
    assert config["stripe_js_url"] == "https://js.stripe.com/v3/"
    assert config["stripe_publishable_key"] == "pk_test_y"
    policy = client.get("/app/passenger").headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in policy
    assert "connect-src 'self' https://js.stripe.com https://api.stripe.com" in policy
    with_settings(environment="development", app_dir=built, stripe_api_key="sk_test_x")  # type: ignore[operator]
    assert client.get("/app/config.json").json()["stripe_publishable_key"] == ""  # cash only


def test_outside_development_there_is_no_app(
    client: TestClient, with_settings: object, built: Path
) -> None:
    with_settings(environment="production", app_dir=built, jwt_secret="x" * 40,  # type: ignore[operator]
                  flower_password="y" * 20)  # fmt: skip
    for path in ("/app", "/app/passenger", "/app/config.json", "/app/assets/passenger.js"):
        assert client.get(path).status_code == 404, path
    with_settings(environment="production", app_enabled=True, app_dir=built,  # type: ignore[operator]
                  jwt_secret="x" * 40, flower_password="y" * 20)  # fmt: skip
    assert client.get("/app/passenger").status_code == 200


def test_an_unbuilt_app_says_how_to_build_it(
    client: TestClient, with_settings: object, tmp_path: Path
) -> None:
    with_settings(environment="development", app_dir=tmp_path / "missing")  # type: ignore[operator]
    page = client.get("/app/passenger")
    assert page.status_code == 503
    assert "npm run build" in page.text
