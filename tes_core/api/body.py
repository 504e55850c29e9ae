"""Request bodies: JSON only.

A body in any other media type (a form, ``text/plain``, none declared) is refused
with 415 before it is read. Those are the types a web page may send to another
site without asking first (a CORS "simple request"); requiring JSON means a
cross-site page must ask (a preflight), which this server grants only to the
origins in ``TES_CORS_ORIGINS``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import ApiError, BadRequest

JSON_TYPE = "application/json"
_READ_SIZE = 64 * 1024


class UnsupportedMediaType(ApiError):
    """415: the body is not declared as JSON."""

    status_code = 415


def is_json(mimetype: str) -> bool:
    """Whether a media type (lower case, no parameters) is JSON: ``application/json`` or
    a structured ``application/...+json`` type."""
    return mimetype == JSON_TYPE or (mimetype.startswith("application/")
                                     and mimetype.endswith("+json"))


def require_json_type() -> None:
    """415 unless the request declares a JSON body (parameters such as ``charset`` are
    allowed; JSON text is UTF-8 whatever they say)."""
    mimetype = request.mimetype
    if not is_json(mimetype):
        got = f"got {request.content_type!r}" if mimetype else "got none"
        raise UnsupportedMediaType(
            f"the request body must be JSON: send it with Content-Type: {JSON_TYPE} ({got})",
            field="Content-Type",
        )


def refuse_non_json_body() -> None:
    """For routes that take no body: 415 if one is declared in another media type
    (an empty HTML form post), nothing otherwise."""
    if request.mimetype and not is_json(request.mimetype):
        require_json_type()


def read_json_body() -> Any:
    """The request body parsed as JSON; 400 when it is empty or not JSON (check the
    media type first: :func:`require_json_type`)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    environ = request.environ
    if request.content_length is None and limit is not None and environ.get(
        "wsgi.input_terminated"
    ):
        raw = _read_unsized(environ["wsgi.input"], limit)
    else:
        raw = request.get_data(cache=False)  # werkzeug refuses a Content-Length over limit
    if not raw:
        raise BadRequest("the request body is empty: send a TES task as JSON", field="body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise BadRequest(
            "the request body is not valid JSON: it is nested too deeply", field="body"
        ) from None


def _read_unsized(stream: Any, limit: int) -> bytes:
    """A body sent without ``Content-Length`` (chunked, under gunicorn); 413 when it is
    longer than ``limit``. werkzeug's own cap would cut such a body at ``limit`` bytes
    without a word, and the app would then parse the truncated text."""
    parts: list[bytes] = []
    size = 0
    while True:
        part = stream.read(_READ_SIZE)
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > limit:
            raise RequestEntityTooLarge()
        parts.append(part)
