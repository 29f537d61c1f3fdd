"""The reference passenger and driver app (`GET /app`), served in development as `/ops` is.

The app is built from `clients/app` (TypeScript on `@ridehail/client`, Leaflet, Stripe.js)
into `RIDEHAIL_APP_DIR`; this router only hands out its files and the few settings a page
needs to start (`/app/config.json`): where Stripe.js comes from, the publishable key, the
map's tile source. It speaks to the API like any app, from the same origin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from api.deps import SettingsDep
from infra.settings import Settings

router = APIRouter(include_in_schema=False)

PAGES = {"passenger": "passenger.html", "driver": "driver.html"}
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(js|css|map|svg|png)$")


def _served(settings: SettingsDep) -> Settings:
    if not settings.app_served:
        raise HTTPException(404, "Not Found")
    return settings


ServedDep = Annotated[Settings, Depends(_served)]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _policy(settings: Settings) -> str:
    """Scripts from here and Stripe.js only; requests to here and Stripe; tiles if any."""
    stripe = _origin(settings.stripe_js_url)
    api = "https://api.stripe.com" if settings.stripe_api_key else stripe
    tiles = _origin(settings.app_tile_url.replace("{s}", "a"))
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {stripe}",
            f"connect-src 'self' {stripe} {api}",
            f"frame-src {stripe} https://hooks.stripe.com",
            f"img-src 'self' data: {tiles}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "object-src 'none'",
            "base-uri 'none'",
        )
    )


def _page(settings: Settings, name: str) -> Response:
    path = settings.app_dir / name
    if not path.is_file():
        return HTMLResponse(
            "<!doctype html><title>ridehail app</title><p>The app is not built: run "
            "<code>npm ci && npm run build</code> in <code>clients/app</code> "
            "(<code>scripts/bootstrap.sh</code> does it).</p>",
            status_code=503,
        )
    return HTMLResponse(
        path.read_text(encoding="utf-8"),
        headers={"Content-Security-Policy": _policy(settings), "Cache-Control": "no-cache"},
    )


@router.get("/app")
def index(settings: ServedDep) -> Response:
    """Which app: passenger or driver."""
    return _page(settings, "index.html")


@router.get("/app/config.json")
def config(settings: ServedDep) -> JSONResponse:
    """What a page needs before it can speak to the API and to Stripe."""
    return JSONResponse(
        {
            "stripe_js_url": settings.stripe_js_url,
            "stripe_publishable_key": settings.stripe_key_for_devices,
            "tile_url": settings.app_tile_url,
            "tile_attribution": settings.app_tile_attribution,
        },
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/app/assets/{name}")
def asset(name: str, settings: ServedDep) -> FileResponse:
    path: Path = settings.app_dir / "assets" / name
    if not _ASSET.match(name) or not path.is_file():
        raise HTTPException(404, "Not Found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.get("/app/{page}")
def page(page: str, settings: ServedDep) -> Response:
    """The passenger's or the driver's page."""
    if page not in PAGES:
        raise HTTPException(404, "Not Found")
    return _page(settings, PAGES[page])
