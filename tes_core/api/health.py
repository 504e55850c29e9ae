"""``/healthz`` (the process answers) and ``/readyz`` (its database and broker answer, and
the backend can run tasks where this process runs them).

Both live at the root, outside ``/ga4gh/tes/v1``, and need no token: they are
for load balancers and orchestrators (Kubernetes probes, App Service health check).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..readiness import check_readiness, describe_problems
from .responses import json_response

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 while the process serves requests; it asks nothing else."""
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    """200 when the database and the broker answer and, in a process that runs tasks, the
    backend can run them; 503 naming what does not, with the reason."""
    core = current_app.extensions["tes"]
    problems = check_readiness(core)
    if problems:
        return json_response(describe_problems(problems), 503)
    body = {"status": "ready", "database": "ok", "broker": "ok"}
    if core.worker.running:
        body["backend"] = "ok"
    return json_response(body)
