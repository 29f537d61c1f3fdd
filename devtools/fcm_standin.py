"""An offline stand-in for FCM's HTTP v1 `messages:send`, for development and tests.

It speaks the protocol firebase-admin posts (`POST /v1/projects/{p}/messages:send`),
answers like FCM (a message name, or FCM's error body for an unregistered token),
and records what it was asked (`GET /_requests`, `DELETE /_requests`).
Tokens starting with `unregistered-` get FCM's 404 UNREGISTERED.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="FCM stand-in", docs_url=None, redoc_url=None)
_received: list[dict[str, Any]] = []


@app.post("/v1/projects/{project}/messages:send")
async def send(project: str, request: Request) -> JSONResponse:
    body = await request.json()
    message = body.get("message", {})
    _received.append({"project": project, "body": body})
    token = str(message.get("token", ""))
    if token.startswith("unregistered-"):
        return JSONResponse(
            {
                "error": {
                    "code": 404,
                    "message": "Requested entity was not found.",
                    "status": "NOT_FOUND",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNREGISTERED",
                        }
                    ],
                }
            },
            status_code=404,
        )
    return JSONResponse({"name": f"projects/{project}/messages/{uuid.uuid4().hex}"})


@app.get("/_requests")
async def requests_seen() -> list[dict[str, Any]]:
    return _received


@app.delete("/_requests")
async def clear() -> dict[str, int]:
    n = len(_received)
    _received.clear()
    return {"cleared": n}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8421)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
