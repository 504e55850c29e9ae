"""The one root exception of the API and its JSON error shape.

Every error response body is ``{"msg": ..., "status_code": ...}`` (the GA4GH
ErrorResponse shape), plus ``"errors": {field: [reasons]}`` when fields are at
fault.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with an HTTP status that the API turns into a JSON error response."""

    status_code = 500
    headers: dict[str, str] = {}  # never mutated: instances set their own
    """Extra response headers (``WWW-Authenticate`` on a 401)."""

    def __init__(
        self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or ({field: [message]} if field else None)

    def to_dict(self) -> dict[str, Any]:
        """The response body."""
        body: dict[str, Any] = {"msg": self.message, "status_code": self.status_code}
        if self.errors:
            body["errors"] = self.errors
        return body


class BadRequest(ApiError):
    """400: the task or the query is malformed."""

    status_code = 400


class SubmitterError(BadRequest):
    """400 raised by a submitter plugin (``tes_rewrite_url``, ``tes_inject_inputs``) when a
    task cannot be adapted, e.g. its URLs need blob storage and none is configured.

    The message says what to configure; the task service prefixes it with the field at
    fault (``inputs[0].url``) when the plugin does not name one. Nothing is stored.
    """


class Unauthorized(ApiError):
    """401: no valid bearer token; ``WWW-Authenticate`` says why (RFC 6750)."""

    status_code = 401

    def __init__(self, message: str, *, challenge: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(ApiError):
    """403: the caller is known but may not do this (an admin's operation)."""

    status_code = 403


class NotFound(ApiError):
    """404: no task with that id."""

    status_code = 404


class Conflict(ApiError):
    """409: the request clashes with the task's current state."""

    status_code = 409


class ServiceUnavailable(ApiError):
    """503: a dependency (database, broker) is not reachable right now."""

    status_code = 503
