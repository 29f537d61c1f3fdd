"""One error shape everywhere: `{"detail": ..., "code": ...}` with the right status, in the
answers and in the OpenAPI document. (The 500 boundary is `api.middleware.Edge`.)"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.error_codes import KNOWN
from domain.errors import DomainError, ErrorKind

log = logging.getLogger(__name__)

STATUS_OF_KIND = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNPROCESSABLE: 422,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
}

_DEFAULT_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


_DESCRIPTIONS = {
    400: "Bad request (a body that is not valid JSON, a malformed header, cursor or id)",
    401: "Not authenticated: no token, or an invalid or expired one",
    403: "Authenticated, but this needs another role",
    404: "Not found, or not yours (the API does not say which)",
    409: "Conflict: an illegal state transition, a duplicate, a race lost",
    413: "Body too large",
    415: "Send JSON with Content-Type: application/json",
    422: "Validation failed: `detail` lists what and where",
    429: "Rate limited: wait `Retry-After` seconds",
    503: "A service we depend on failed or is briefly out of reach; try again (Retry-After)",
}


_RETRY = {"Retry-After": {"schema": {"type": "integer"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (and always 422), all `ErrorOut`."""
    from api.schemas import ErrorOut

    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 422}):
        entry: dict[str, Any] = {"model": ErrorOut, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY
        out[status] = entry
    return out


class ApiError(Exception):
    """An error raised by the HTTP layer itself (auth, headers, idempotency)."""

    def __init__(
        self, status: int, detail: Any, code: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers


def error_response(
    status: int, detail: Any, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def _clean_validation(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # pydantic's entries can hold exception objects (ctx) and the raw input: keep them JSON
    out = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
        out.append(item)
    return out


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API answers: every validation error in the
    one error shape (FastAPI's default 422 schema is not what we send), a 400 on every
    operation with a body (one that cannot be parsed), and a 401 on every operation that
    takes a token."""
    from fastapi.openapi.utils import get_openapi

    from api.schemas import ErrorOut

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
            servers=app.servers,
            contact=app.contact,
            license_info=app.license_info,
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in (
            ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
            .pop("$defs", {})
            .items()
        ):
            schemas.setdefault(name, schema)
        error = {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        }
        for methods in doc.get("paths", {}).values():
            for op in methods.values():
                responses = op.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": _DESCRIPTIONS[422], **error}
                if "requestBody" in op:  # a body that cannot be parsed at all
                    responses.setdefault("400", {"description": _DESCRIPTIONS[400], **error})
                if op.get("security") and "401" not in responses:
                    responses["401"] = {"description": _DESCRIPTIONS[401], **error}
                # the database or Redis briefly out of reach (api.middleware.Edge)
                responses.setdefault(
                    "503", {"description": _DESCRIPTIONS[503], **error, "headers": _RETRY}
                )
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.code, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain_error(_req: Request, exc: DomainError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        # a provider's own code (Stripe's `expired_card`...) is not one of ours: the
        # error's class names it
        code = exc.code if exc.code in KNOWN else type(exc).code
        return error_response(STATUS_OF_KIND[exc.kind], exc.detail, code, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _clean_validation(list(exc.errors())), "validation_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _DEFAULT_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, exc.detail, code, getattr(exc, "headers", None))
