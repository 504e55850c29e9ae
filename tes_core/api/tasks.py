"""``/tasks``: create, list, get and cancel."""

from __future__ import annotations

import sys

from flask import Blueprint, Response, request
from flask.views import MethodView

from ..errors import BadRequest, NotFound
from ..schemas import parse_list_query, parse_view
from .auth import current_principal
from .body import read_json_body, refuse_non_json_body, require_json_type
from .cors import refuse_cross_site
from .responses import json_response, task_service

blueprint = Blueprint("tasks", __name__)


class TaskList(MethodView):
    """``GET /tasks`` lists; ``POST /tasks`` creates."""

    init_every_request = False  # stateless views: one instance serves every request

    def get(self) -> Response:
        """One page of tasks, newest first (``tesListTasksResponse``)."""
        return json_response(
            task_service().list(parse_list_query(request.args), current_principal())
        )

    def post(self) -> Response:
        """Create a task from the JSON body; answer ``{"id": ...}``."""
        require_json_type()
        refuse_cross_site()
        document = read_json_body()
        return json_response({"id": task_service().create(document, current_principal())})


class TaskCounts(MethodView):
    """``GET /task-counts``: how many tasks match the list's filters, per state (an
    addition of this server, for the dashboard)."""

    init_every_request = False

    def get(self) -> Response:
        """``{"counts": {state: n}, "capped": [states counted only up to the bound]}``."""
        return json_response(
            task_service().counts(parse_list_query(request.args), current_principal())
        )


class TaskItem(MethodView):
    """``GET /tasks/{id}``."""

    init_every_request = False

    def get(self, task_id: str) -> Response:
        """One task in the requested view (MINIMAL by default)."""
        return json_response(
            task_service().get(_known(task_id), parse_view(request.args), current_principal())
        )


class TaskCancel(MethodView):
    """``POST /tasks/{id}:cancel``: the colon sits inside the id's path segment."""

    init_every_request = False

    def post(self, task_id: str) -> Response:
        """Ask to cancel; ``{}`` even when the task had already finished."""
        refuse_non_json_body()
        refuse_cross_site()
        task_service().cancel(_known(task_id), current_principal())
        return json_response({})


class ExecutorOutput(MethodView):
    """``GET /tasks/{id}/executors/{index}/stdout`` (and ``stderr``): the end of what one
    executor wrote so far, as text (an addition of this server, for the dashboard and
    ``tes logs --follow``)."""

    init_every_request = False

    def get(self, task_id: str, index: str, stream: str) -> Response:
        """The last ``tail`` bytes (``TES_OUTPUT_TAIL_MAX`` at most and by default), or
        with ``offset`` the bytes from there; ``X-Output-Offset`` and ``X-Output-Next``
        say where they lie in the stream when it was read live."""
        if not (index.isascii() and index.isdigit() and len(index) <= 9):
            raise BadRequest(f"index must be an executor's number (0, 1, ...), not {index!r}",
                             field="index")
        limit = _bytes(request.args.get("tail"), "tail", 1, sys.maxsize)
        offset = request.args.get("offset")
        answer = task_service().output(
            _known(task_id), int(index), stream, limit,
            None if offset is None else _bytes(offset, "offset", 0, 0),
            current_principal(),
        )
        response = Response(answer.text, mimetype="text/plain")
        response.headers["Cache-Control"] = "no-store"
        if answer.first is not None:
            response.headers["X-Output-Offset"] = str(answer.first)
            response.headers["X-Output-Next"] = str(answer.next)
        return response


def _bytes(raw: str | None, name: str, low: int, default: int) -> int:
    """The query parameter ``name`` as a number of bytes of at least ``low`` (``default``
    when absent); a 400 naming it otherwise."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or int(raw) < low:
        what = "a positive" if low else "a non-negative"
        raise BadRequest(f"{name} must be {what} number of bytes, not {raw!r}", field=name)
    return int(raw)


def _known(task_id: str) -> str:
    """404 at once for an id no task can have (PostgreSQL rejects NUL in a query)."""
    if "\x00" in task_id:
        raise NotFound(f"no task with id {task_id!r}")
    return task_id


blueprint.add_url_rule("/tasks", view_func=TaskList.as_view("task_list"))
blueprint.add_url_rule("/task-counts", view_func=TaskCounts.as_view("task_counts"))
# ``<task_id>`` never holds a ':' (the app's default converter, api/routing.py), so
# ``/tasks/x:cancel`` matches only the cancel route and OPTIONS there answers POST alone.
blueprint.add_url_rule("/tasks/<task_id>", view_func=TaskItem.as_view("task_item"))
blueprint.add_url_rule("/tasks/<task_id>:cancel", view_func=TaskCancel.as_view("task_cancel"))
blueprint.add_url_rule(
    "/tasks/<task_id>/executors/<index>/<any(stdout, stderr):stream>",
    view_func=ExecutorOutput.as_view("executor_output"),
)
