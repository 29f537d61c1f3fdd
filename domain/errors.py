"""Domain errors carry a machine code and a kind; the API maps kinds to HTTP statuses."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID = "invalid"  # 400
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409
    UNPROCESSABLE = "unprocessable"  # 422
    RATE_LIMITED = "rate_limited"  # 429
    UNAVAILABLE = "unavailable"  # 503: a provider we depend on failed; try again


class DomainError(Exception):
    """A rule said no. Subclasses name their kind and default code as class keywords:
    `class NotFound(DomainError, kind=ErrorKind.NOT_FOUND, code="not_found")`."""

    kind: ErrorKind = ErrorKind.INVALID
    code: str = "invalid"

    def __init_subclass__(
        cls, *, kind: ErrorKind | None = None, code: str | None = None, **kwargs: object
    ) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
        if code is not None:
            cls.code = code

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class NotFound(DomainError, kind=ErrorKind.NOT_FOUND, code="not_found"):
    """It does not exist, or it is not the caller's to see (the API does not say which)."""


class Conflict(DomainError, kind=ErrorKind.CONFLICT, code="conflict"):
    """The state says no: a duplicate, a race lost, something already done."""


class IllegalTransition(Conflict, code="illegal_transition"):
    """The state machine says no."""


class Forbidden(DomainError, kind=ErrorKind.FORBIDDEN, code="forbidden"):
    """Known, but not for this caller's role."""


class RateLimited(DomainError, kind=ErrorKind.RATE_LIMITED, code="rate_limited"):
    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class Unprocessable(DomainError, kind=ErrorKind.UNPROCESSABLE, code="unprocessable"):
    """Well-formed, but not something we can do (a route too long, an implausible amount)."""


class NotVisibleYet(Exception):
    """A row a job is about is not visible yet (the transaction that makes it has not
    committed): the job comes back later. Not a `DomainError`: no caller ever sees it."""
