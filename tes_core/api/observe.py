"""Per-request telemetry: the request id and the latency histogram.

A request keeps the ``X-Request-ID`` its client sent (if it is a sane token)
or gets a new one; the response returns it, and every log record written while
serving the request carries it. This runs on every request, the hot paths
included, so it is a thin WSGI wrapper rather than Flask ``before_request`` /
``after_request`` hooks, whose dispatch costs several times more.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, request

from ..telemetry import metrics
from ..telemetry.logs import request_id

HEADER = "X-Request-ID"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_ROUTE_KEY = "tes.route"


def observe_requests(app: Flask) -> None:
    """Wrap ``app``'s WSGI callable so that each request gets an id and is timed.

    Installed first, so 401s and errors get a request id too; Flask logs unhandled
    errors inside the wrapped call, so those lines keep it.
    """
    inner = app.wsgi_app

    @app.url_value_preprocessor
    def remember_route(endpoint: str | None, values: dict[str, Any] | None) -> None:
        # The matched route template, for the latency label (never the raw path). Flask
        # calls URL value preprocessors directly, before any before_request hook (a 401
        # keeps its route); the request object itself is gone once the app returns.
        rule = request.url_rule
        if rule is not None:
            request.environ[_ROUTE_KEY] = rule.rule

    def observed(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        given = environ.get(_ENVIRON_KEY)
        rid = given if given is not None and _ACCEPTED.match(given) else os.urandom(16).hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = int(status_line[:3])
            headers.append((HEADER, rid))
            return start_response(status_line, headers, exc_info)

        try:
            return inner(environ, start)
        finally:
            metrics.observe_request(
                environ.get("REQUEST_METHOD", ""), environ.get(_ROUTE_KEY, "unmatched"),
                status, time.perf_counter() - started,
            )
            request_id.reset(token)

    app.wsgi_app = observed  # type: ignore[method-assign]
