"""The HTTP endpoints of ``tes-server worker`` (``TES_WORKER_METRICS_PORT``): ``/metrics``
for Prometheus, ``/healthz`` and ``/readyz`` for an orchestrator's probes.

A worker serves no API, so these are its only HTTP surface: a small WSGI app on a
daemon thread, as ``prometheus_client.start_http_server`` would run, with two routes
more. ``/healthz`` answers 503 when a thread the worker needs has died (restart it);
``/readyz`` answers 503 while the database, the broker or the backend cannot be used
(wait, do not restart), with the same body as the API's ``/readyz``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..readiness import check_readiness, describe_problems
from ..telemetry.metrics import process_registry

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # a probe every few seconds is not worth a log line


def probe_app(core: Any) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app serving ``/metrics``, ``/healthz`` and ``/readyz`` for ``core``'s worker."""
    from prometheus_client import make_wsgi_app

    metrics = make_wsgi_app(process_registry())

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            stalled = core.worker.stalled_reason()
            body = ({"msg": f"not alive: {stalled}", "status_code": 503} if stalled
                    else {"status": "ok"})
            return _json(start_response, body, 503 if stalled else 200)
        if path == "/readyz":
            problems = check_readiness(core)
            if problems:
                return _json(start_response, describe_problems(problems), 503)
            return _json(start_response, {"status": "ready", "database": "ok", "broker": "ok",
                                          "backend": "ok"}, 200)
        return metrics(environ, start_response)

    return app


def serve_probes(port: int, core: Any) -> _ThreadingServer:
    """Serve :func:`probe_app` on ``0.0.0.0:port`` from a daemon thread; returns the server
    (``shutdown()`` stops it)."""
    server = make_server("0.0.0.0", port, probe_app(core), _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="tes-worker-probes", daemon=True).start()
    log.info("metrics, /healthz and /readyz served on port %d", port)
    return server  # type: ignore[return-value]


def _json(start_response: StartResponse, body: dict[str, Any], status: int) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Service Unavailable"
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data)))])
    return [data]
