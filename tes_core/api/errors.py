"""Every error becomes the one JSON error shape; nothing escapes as an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, Response
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from ..errors import ApiError
from .responses import json_response

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers that turn exceptions into ``{"msg", "status_code"}`` bodies."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        response = json_response(exc.to_dict(), exc.status_code)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is larger than this server accepts ({limit} bytes)"
        response = json_response({"msg": message, "status_code": status}, status)
        if status == 405 and exc.get_response().allow:
            response.allow.update(exc.get_response().allow)
        return response

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Response:
        log.warning("database error: %s", exc.orig)
        return json_response(
            {"msg": "the database is not available right now; retry in a moment",
             "status_code": 503},
            503,
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return json_response(
            {"msg": "internal server error; the server log has the details", "status_code": 500},
            500,
        )
