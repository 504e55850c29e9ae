"""Per-request telemetry: the request id and the latency histogram.

A request keeps the ``X-Request-ID`` its client sent (if it is a sane token)
or gets a new one; the response returns it, and every log record written while
serving the request carries it. Two hooks, a few microseconds: this runs on
every request, the hot paths included.
"""

from __future__ import annotations

import os
import re
import time

from flask import Flask, Response, g, request

from ..telemetry import metrics
from ..telemetry.logs import request_id

HEADER = "X-Request-ID"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")


def observe_requests(app: Flask) -> None:
    """Install the hooks that give each request an id and time it."""

    @app.before_request
    def start() -> None:
        given = request.environ.get(_ENVIRON_KEY)
        rid = given if given is not None and _ACCEPTED.match(given) else os.urandom(16).hex()
        g.tes_request = (time.perf_counter(), rid, request_id.set(rid))

    @app.after_request
    def finish(response: Response) -> Response:
        started = g.get("tes_request")
        if started is None:  # a request that failed before ``start`` ran
            return response
        response.headers[HEADER] = started[1]
        rule = request.url_rule
        metrics.observe_request(
            request.method, rule.rule if rule is not None else "unmatched",
            response.status_code, time.perf_counter() - started[0],
        )
        # The id ends with the response (no teardown hook: one hook less per request);
        # Flask logs unhandled errors before this runs, so they keep it.
        request_id.reset(started[2])
        return response
