"""CORS for browsers on other origins (the spec asks for it), as one cheap response hook.

A request with an ``Origin`` the settings allow gets ``Access-Control-Allow-Origin``;
a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) also gets the
allowed methods and the requested headers. Requests without ``Origin`` pay nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, OPTIONS"
EXPOSED_HEADERS = "WWW-Authenticate, X-Request-ID"
"""Response headers a browser app may read: why a token was refused, the request id."""
PREFLIGHT_MAX_AGE = "86400"


def enable_cors(app: Flask, prefix: str, origins: Iterable[str]) -> None:
    """Answer CORS for every path under ``prefix``, for ``origins`` (``*`` allows any)."""
    allowed = frozenset(origins)
    any_origin = "*" in allowed

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith(prefix):
            return response
        if not any_origin and origin not in allowed:
            return response
        headers = response.headers
        headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if not any_origin:
            headers.add("Vary", "Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            wanted = request.headers.get("Access-Control-Request-Headers")
            if wanted:
                headers["Access-Control-Allow-Headers"] = wanted
            headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
