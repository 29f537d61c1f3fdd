"""Errors answered in Stripe's shape: `{"error": {"type", "code", "message", "param", ...}}`."""

from __future__ import annotations

from typing import Any

DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error as Stripe answers it.

    `saved` says whether Stripe would store it under the request's idempotency key:
    Stripe saves a result once the endpoint began executing (card errors, 5xx), not
    when the request failed validation (4xx other than 402), so a retry of those runs
    again.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    @property
    def saved(self) -> bool:
        return self.status == 402 or self.status >= 500

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOCS + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    return StripeError(status, message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def unknown_param(param: str) -> StripeError:
    return invalid(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")


def no_such(kind: str, ident: str, *, param: str = "id", status: int = 404) -> StripeError:
    return invalid(
        f"No such {kind}: '{ident}'", param=param, code="resource_missing", status=status
    )


def unexpected_state(message: str, code: str) -> StripeError:
    return invalid(message, code=code)


def api_error(message: str = "An unknown error occurred") -> StripeError:
    return StripeError(500, message, type_="api_error")


def rate_limited() -> StripeError:
    return StripeError(
        429,
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
    )
