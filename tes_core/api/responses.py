"""Fast JSON responses and access to the task service from a request."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app

from ..service import TaskService


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response (no key sorting: it is on the hot path)."""
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status=status,
        mimetype="application/json",
    )


def task_service() -> TaskService:
    """The task service of the running app."""
    return current_app.extensions["tes"].service
