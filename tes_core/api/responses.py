"""Fast JSON responses and access to the task service from a request."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app

from ..service import TaskService


def json_response(body: Any, status: int = 200) -> Response:
    """A compact JSON response (no key sorting: it is on the hot path)."""
    try:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # An unpaired surrogate (echoed from a client's input) has no UTF-8 form: escape it.
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
    return Response(data, status=status, mimetype="application/json")


def task_service() -> TaskService:
    """The task service of the running app."""
    return current_app.extensions["tes"].service
