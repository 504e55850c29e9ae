"""``/metrics``: Prometheus exposition at the root, outside ``/ga4gh/tes/v1``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..telemetry.metrics import CONTENT_TYPE, exposition

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    """Every metric of this server (see :mod:`tes_core.telemetry.metrics`)."""
    return Response(exposition(current_app.extensions["tes"]), content_type=CONTENT_TYPE)
