"""``/healthz`` (the process answers) and ``/readyz`` (its database and broker answer).

Both live at the root, outside ``/ga4gh/tes/v1``, and need no token: they are
for load balancers and orchestrators (Kubernetes probes, App Service health check).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..readiness import check_readiness
from .responses import json_response

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 while the process serves requests; it asks nothing else."""
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """200 when the database and the broker answer; 503 naming the one that does not."""
    problems = check_readiness(current_app.extensions["tes"])
    if problems:
        names = " and ".join(f"the {name}" for name in problems)
        return json_response(
            {"msg": f"not ready: {names} cannot be reached", "status_code": 503,
             "errors": {name: [reason] for name, reason in problems.items()}},
            503,
        )
    return json_response({"status": "ready", "database": "ok", "broker": "ok"})
