"""How request paths reach the API: the ``/v1`` alias and the route variable converter.

Some clients append ``/v1/tasks`` to the address they are given (py-tes 0.4, inside
Snakemake's TES executor and older cwl-tes; Funnel serves both forms), so a user who
types the server's plain address would get 404s. Requests under ``/v1`` are served as
if they were under the API prefix: authentication, CORS, metrics and errors apply
exactly as there.

py-tes 0.4 also asks for the service info at ``/v1/tasks/service-info`` (TES 0.3's path;
Toil's TES batch system does so at start-up and stops on a 404) and reads it as TES 0.3's
``{name, doc, storage}``, refusing any other field. So that one path is served by
``<prefix>/service-info`` marked with :data:`LEGACY_MARK`, which answers in that shape.
Task ids are the server's UUIDs: none is ``service-info``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.routing import BaseConverter

ALIAS = "/v1"
LEGACY_SERVICE_INFO = ALIAS + "/tasks/service-info"
"""Where py-tes 0.4's ``get_service_info`` asks (TES 0.3)."""
LEGACY_MARK = "tes_core.legacy_service_info"
"""WSGI environ key set on a request that came in at :data:`LEGACY_SERVICE_INFO`."""


class SegmentConverter(BaseConverter):
    """The app's default route variable: one path segment without ':', so a task id
    never swallows ``:cancel`` (``/tasks/<task_id>`` and ``/tasks/<task_id>:cancel``)."""

    regex = "[^/:]+"


def serve_alias(app: Flask, prefix: str) -> None:
    """Answer ``/v1/...`` as ``<prefix>/...`` (see the module doc)."""
    inner: Callable[..., Iterable[bytes]] = app.wsgi_app

    def aliased(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == LEGACY_SERVICE_INFO:
            environ["PATH_INFO"] = prefix + "/service-info"
            environ[LEGACY_MARK] = True
        elif path == ALIAS or path.startswith(ALIAS + "/"):
            environ["PATH_INFO"] = prefix + path[len(ALIAS):]
        return inner(environ, start_response)

    app.wsgi_app = aliased  # type: ignore[method-assign]
