"""The OpenAPI document this server serves: GA4GH's TES file, completed when it is loaded.

``tes_core/openapi/task_execution_service.openapi.yaml`` is GA4GH's TES 1.1 document,
byte for byte, and stays so: moving to a new TES version is replacing that file (and
bundling any new document it refers to), not re-applying edits by hand. What the
GA4GH file cannot say about this server is added here, when the document is built:

* **Self-contained.** The GA4GH file takes ``Service`` and ``ServiceType`` from the
  service-info document on the internet, which offline tools (code generators,
  validators, an explorer without internet access) cannot fetch. Every ``$ref`` to
  another document is inlined from a copy shipped in ``tes_core/openapi``
  (:data:`BUNDLED`); one to a document that is not bundled raises
  :class:`UnbundledReference` (a test builds the document, so an upgrade that needs a
  new bundle fails there, not in production).
* **Every error the server sends**, per operation (:data:`OPERATION_ERRORS`), with the
  one body every error has (``ErrorResponse``: ``msg``, ``status_code``, ``errors``).
* **The ``/v1`` alias** as a second entry of ``servers``: the same operations under
  another base path, which is what ``servers`` is for. Swagger UI offers it in its
  server menu, code generators and schemathesis take it as a base URL, and no
  operation appears twice (a duplicated path list would need new operation ids and
  give generated clients every method twice).
* **The task events stream** (``GET /events``, :data:`EVENTS_PATH`), which TES does not
  define: Server-Sent Events of state changes and new log lines.
* **Task counts by state** (``GET /task-counts``, :data:`TASK_COUNTS_PATH`), which the
  dashboard shows: ListTasks' filters, bounded counts.
* **Provisioning** (``POST /provision``, ``GET /provision/{id}``, :data:`PROVISION_PATHS`):
  creating the cloud resources the configured backend needs, for admins.
* **Bearer tokens** as an optional security scheme on the task operations (required
  only when the server runs with ``TES_AUTH_ENABLED``).
"""

from __future__ import annotations

import copy
import functools
from importlib.resources import files
from typing import Any
from urllib.parse import urljoin

import yaml

from .. import API_PREFIX
from .routing import ALIAS

SPEC_FILE = "task_execution_service.openapi.yaml"
"""GA4GH's TES document, unchanged."""

BUNDLED = {
    "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/"
    "service-info.yaml": "service-info.yaml",
}
"""Documents the TES file refers to, by URL, and the file in ``tes_core/openapi`` that
holds a copy of each."""

ERROR_SCHEMA = "ErrorResponse"

ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "description": "The body of every error this server sends, whatever its status.",
    "required": ["msg", "status_code"],
    "properties": {
        "msg": {"type": "string",
                "description": "What went wrong, naming the field at fault and what to do."},
        "status_code": {"type": "integer", "description": "The HTTP status, repeated."},
        "errors": {
            "type": "object",
            "description": "The fields at fault and why, e.g. `executors.0.command`, "
            "`state`, `body`, `Content-Type`, `Origin`.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "additionalProperties": False,
}

_HEADER_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "Why the token was refused (RFC 6750): `Bearer realm=\"tes\"`, "
        "with `error` and `error_description` when a token was sent.",
        "schema": {"type": "string"},
    },
}
_HEADER_ALLOW = {
    "Allow": {"description": "The methods this path has.", "schema": {"type": "string"}},
}

ERROR_RESPONSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "400": ("BadRequest",
            "The request is malformed: the task (`errors` names each field at fault and "
            "why, including a bound such as `TES_MAX_EXECUTORS`), the JSON body, a query "
            "parameter (`view`, `state` — empty included —, `page_size`, `page_token`, the "
            "tag filters) or the `Authorization` header.", {}),
    "401": ("Unauthorized",
            "Only when the server requires tokens (`TES_AUTH_ENABLED`): no bearer token, "
            "or one that is not valid.", _HEADER_WWW_AUTHENTICATE),
    "403": ("Forbidden",
            "A web page on an origin that `TES_CORS_ORIGINS` does not list tried to change "
            "something (its browser sent `Origin`); or, on `/provision`, a caller without "
            "the admin role (`TES_AUTH_ADMIN_ROLE`).", {}),
    "404": ("NotFound",
            "No task with that id (with tokens: none of the caller's); on `/provision`: "
            "the configured backend offers no provisioning, or no request has that id.",
            {}),
    "409": ("Conflict",
            "The request clashes with what exists (e.g. a resource group of that name in "
            "another region); `msg` says what and where.", {}),
    "405": ("MethodNotAllowed",
            "The path has no such method; `Allow` lists those it has. (OpenAPI has no "
            "responses of a path, only of its operations, so each operation of the path "
            "lists this one.)", _HEADER_ALLOW),
    "413": ("PayloadTooLarge",
            "The body is larger than the server accepts (`TES_MAX_BODY_BYTES`).", {}),
    "415": ("UnsupportedMediaType",
            "A body not declared as JSON: send it with `Content-Type: application/json`.", {}),
    "500": ("InternalServerError",
            "A fault of the server; its log has the details (look for the `X-Request-ID`).",
            {}),
    "503": ("ServiceUnavailable",
            "The database (or, with tokens, the issuer's signing keys) cannot be reached "
            "right now; retry in a moment.", {}),
}
"""Status -> (name in ``components.responses``, description, headers)."""

_TASK_CALL = ("401", "405", "500", "503")
OPERATION_ERRORS: dict[tuple[str, str], tuple[str, ...]] = {
    ("/service-info", "get"): ("405", "500"),
    ("/tasks", "get"): ("400", *_TASK_CALL),
    ("/tasks", "post"): ("400", "403", "413", "415", *_TASK_CALL),
    ("/tasks/{id}", "get"): ("400", "404", *_TASK_CALL),
    ("/tasks/{id}:cancel", "post"): ("400", "403", "404", "413", "415", *_TASK_CALL),
    ("/events", "get"): ("400", *_TASK_CALL),
    ("/task-counts", "get"): ("400", *_TASK_CALL),
    ("/tasks/{id}/executors/{index}/stdout", "get"): ("400", "404", *_TASK_CALL),
    ("/tasks/{id}/executors/{index}/stderr", "get"): ("400", "404", *_TASK_CALL),
    ("/provision", "post"): ("400", "403", "404", "409", "413", "415", *_TASK_CALL),
    ("/provision/{id}", "get"): ("403", "404", *_TASK_CALL),
}
"""The error statuses each operation may answer (``tests/api/test_api_openapi.py``
provokes them from a real server)."""

DEFAULT_ERRORS = ("400", *_TASK_CALL)
"""For an operation a new TES version adds before this table knows it."""

PUBLIC_OPERATIONS = frozenset({("/service-info", "get")})
"""Operations that never ask for a token (see ``tes_core/api/auth.py``)."""

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "Required when the server runs with `TES_AUTH_ENABLED`: a JWT from the "
    "issuer `TES_AUTH_ISSUER` names, for the audience `TES_AUTH_AUDIENCE`.",
}

_EVENT_DATA = (
    "Each event has `id:` (an increasing event id), `event:` and one `data:` line of JSON. "
    "`event: state`: `{\"task_id\", \"name\", \"state\", \"time\", \"tags\"}`. "
    "`event: log`: `{\"task_id\", \"time\", \"system_log\"}` for a new system log line, "
    "or `{\"task_id\", \"time\", \"executor\": {\"index\", \"exit_code\", "
    "\"end_time\"}}` when an executor ended. A comment line (`: keepalive`) comes every "
    "15 s. The server ends a stream after `TES_EVENTS_MAX_SECONDS`; reconnect with "
    "`Last-Event-ID` to resume."
)

EVENTS_PATH: dict[str, Any] = {"get": {
    "tags": ["TaskService"],
    "summary": "StreamTaskEvents",
    "description": "Task state changes and new log lines as Server-Sent Events, filtered "
    "like ListTasks; with tokens, only the caller's tasks (an admin's: all). Not part of "
    "TES: a tes-core addition.",
    "operationId": "StreamTaskEvents",
    "parameters": [  # after ListTasks' filters (EVENT_FILTERS), copied when it is built
        {"name": "Last-Event-ID", "in": "header", "required": False,
         "description": "Resume after this event id (events are kept "
         "`TES_EVENTS_KEEP_SECONDS`).", "schema": {"type": "string"}},
        {"name": "access_token", "in": "query", "required": False,
         "description": "The bearer token, for browsers' EventSource, which cannot send "
         "headers (prefer the `Authorization` header elsewhere).",
         "schema": {"type": "string"}},
    ],
    "responses": {"200": {
        "description": _EVENT_DATA,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }},
}}
"""``GET /events``, added to the served document's ``paths``."""

EVENT_FILTERS = ("name_prefix", "state", "tag_key", "tag_value")
"""ListTasks' parameters that ``GET /events`` takes as well."""

TASK_COUNTS_PATH: dict[str, Any] = {"get": {
    "tags": ["TaskService"],
    "summary": "CountTasks",
    "description": "How many tasks match ListTasks' filters (`name_prefix`, `tag_key`, "
    "`tag_value`), per state; with tokens, only the caller's tasks (an admin's: all). "
    "Bounded: without a name or tag filter each state is counted up to `TES_COUNT_LIMIT` "
    "tasks, with one the newest `TES_COUNT_LIMIT` matching tasks are; a state in `capped` "
    "has at least its count. Not part of TES: a tes-core addition.",
    "operationId": "CountTasks",
    "parameters": [],  # ListTasks' filters (COUNT_FILTERS), copied when it is built
    "responses": {"200": {
        "description": "Counts by state; states without a task are left out.",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["counts", "capped"],
            "properties": {
                "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                           "example": {"RUNNING": 3, "COMPLETE": 10000}},
                "capped": {"type": "array", "items": {"type": "string"},
                           "example": ["COMPLETE"]},
            },
        }}},
    }},
}}
"""``GET /task-counts``, added to the served document's ``paths``."""

_PROVISION_STATE = {
    "type": "object",
    "required": ["id", "backend", "state", "created", "updated", "request", "progress",
                 "error"],
    "properties": {
        "id": {"type": "string"},
        "backend": {"type": "string", "description": "What it provisions for, e.g. `batch`."},
        "state": {"type": "string", "enum": ["QUEUED", "RUNNING", "COMPLETE", "ERROR"]},
        "created": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "request": {"type": "object", "description": "The request as accepted (normalised)."},
        "progress": {"type": "object", "description": "The backend's report: each step and "
                     "its state, the resources made or found, and the settings the server "
                     "then needs (as Key Vault references, never values)."},
        "error": {"type": "string", "nullable": True,
                  "description": "In `ERROR`: which step failed and why."},
    },
}

PROVISION_PATHS: dict[str, dict[str, Any]] = {
    "/provision": {"post": {
        "tags": ["Provisioning"],
        "summary": "StartProvisioning",
        "description": "Start creating, in the background, the cloud resources the "
        "configured backend needs (for Azure Batch: resource group, storage account and "
        "its Azure Files share, Batch account, optional Key Vault secrets) with the "
        "server's own credential. Admins only when tokens are on. The same names again "
        "report the existing resources. Not part of TES: a tes-core addition.",
        "operationId": "StartProvisioning",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "description": "Subscription, region and names; the "
            "backend's README lists its fields (tes-batch: `plugins/tes_batch/README.md`)."}}}},
        "responses": {"202": {
            "description": "Accepted: follow it with `GET /provision/{id}`.",
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}}}}},
        }},
    }},
    "/provision/{id}": {"get": {
        "tags": ["Provisioning"],
        "summary": "GetProvisioning",
        "description": "How far a provisioning request got, what it made and its error. "
        "Admins only when tokens are on. Not part of TES: a tes-core addition.",
        "operationId": "GetProvisioning",
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": {
            "description": "The request's state.",
            "content": {"application/json": {"schema": _PROVISION_STATE}},
        }},
    }},
}
"""The provisioning operations, added to the served document's ``paths``."""

def _output_path(stream: str) -> dict[str, Any]:
    """``GET /tasks/{id}/executors/{index}/<stream>``."""
    return {"get": {
        "tags": ["TaskService"],
        "summary": f"GetExecutorOutput ({stream})",
        "description": f"The end of what one executor wrote to its {stream} so far, as "
        "text: while it runs, read live by the backend (the local backend does, for an "
        f"executor whose task names no {stream} file of its own, as does Slurm's; other "
        "backends answer "
        "404); once it ended, its stored executor log. With tokens, only the caller's "
        "tasks (an admin's: all). Not part of TES: a tes-core addition.",
        "operationId": f"GetExecutor{stream.capitalize()}",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "index", "in": "path", "required": True,
             "description": "The executor's position in the task, from 0.",
             "schema": {"type": "integer", "minimum": 0}},
            {"name": "tail", "in": "query", "required": False,
             "description": "How many bytes to answer (at most and by default "
             "`TES_OUTPUT_TAIL_MAX`): the last ones, or from `offset`.",
             "schema": {"type": "integer", "minimum": 1}},
            {"name": "offset", "in": "query", "required": False,
             "description": "Answer the bytes from this byte of the stream on (or from the "
             "earliest still kept, if later: see `X-Output-Offset`), for following it: ask "
             "next from `X-Output-Next`. While the task runs, read live even after the "
             "executor ended; once the task ended, the stored log's end, without the "
             "headers. A character cut at the end is left for the next read.",
             "schema": {"type": "integer", "minimum": 0}},
        ],
        "responses": {"200": {
            "description": f"The end of the executor's {stream}, or its bytes from "
            "`offset` (UTF-8; empty when it wrote nothing yet).",
            "headers": {
                "X-Output-Offset": {
                    "description": "The stream byte the answer starts at (read live only).",
                    "schema": {"type": "integer"}},
                "X-Output-Next": {
                    "description": "The stream byte after the answer: the next `offset` "
                    "(read live only).", "schema": {"type": "integer"}},
            },
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }},
    }}


OUTPUT_PATHS: dict[str, dict[str, Any]] = {
    f"/tasks/{{id}}/executors/{{index}}/{stream}": _output_path(stream)
    for stream in ("stdout", "stderr")
}
"""The executor output operations, added to the served document's ``paths``."""

COUNT_FILTERS = ("name_prefix", "tag_key", "tag_value")
"""ListTasks' parameters that ``GET /task-counts`` takes (a ``state`` is checked, then
ignored: every state is counted)."""

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class UnbundledReference(ValueError):
    """The TES document refers to a document that no file in ``tes_core/openapi`` holds."""


@functools.cache
def ga4gh_text() -> str:
    """GA4GH's TES document as shipped (YAML)."""
    return _read(SPEC_FILE)


@functools.cache
def served_document() -> dict[str, Any]:
    """The document this server serves (see the module doc); build it once."""
    return build(load_yaml(ga4gh_text()))


@functools.cache
def served_yaml() -> str:
    """:func:`served_document` as YAML."""
    return yaml.safe_dump(served_document(), sort_keys=False, allow_unicode=True, width=100)


def build(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (GA4GH's, parsed) completed for this server; the argument is not changed."""
    document = copy.deepcopy(document)
    _inline_external_refs(document)
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})[ERROR_SCHEMA] = copy.deepcopy(ERROR_BODY)
    responses = components.setdefault("responses", {})
    for name, description, headers in ERROR_RESPONSES.values():
        responses[name] = {
            "description": description,
            **({"headers": copy.deepcopy(headers)} if headers else {}),
            "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
        }
    components.setdefault("securitySchemes", {})["bearerAuth"] = dict(BEARER_SCHEME)
    _add_path(document, "/events", EVENTS_PATH, EVENT_FILTERS)
    _add_path(document, "/task-counts", TASK_COUNTS_PATH, COUNT_FILTERS)
    document["paths"].update(copy.deepcopy(OUTPUT_PATHS))
    document["paths"].update(copy.deepcopy(PROVISION_PATHS))
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            answers = {str(status): body for status, body in operation["responses"].items()}
            for status in OPERATION_ERRORS.get((path, method), DEFAULT_ERRORS):
                answers.setdefault(status, {
                    "$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"})
            operation["responses"] = answers
            if (path, method) not in PUBLIC_OPERATIONS:
                operation.setdefault("security", [{}, {"bearerAuth": []}])
    document["servers"] = [
        {"url": API_PREFIX, "description": "The TES base path."},
        {"url": ALIAS, "description": f"The same API under `{ALIAS}`, for clients that append "
         f"`{ALIAS}/tasks` to the address they are given (py-tes 0.4, Snakemake's TES "
         "executor, older cwl-tes, Toil's TES batch system), as Funnel serves it; py-tes "
         f"0.4's `{ALIAS}/tasks/service-info` answers TES 0.3's `{{name, doc, storage}}`."},
    ]
    return document


def _add_path(
    document: dict[str, Any], path: str, item: dict[str, Any], filters: tuple[str, ...]
) -> None:
    """Add ``item`` at ``path``, its GET taking ListTasks' parameters named in ``filters``
    first."""
    item = copy.deepcopy(item)
    listing = document.get("paths", {}).get("/tasks", {}).get("get", {})
    taken = [copy.deepcopy(parameter) for parameter in listing.get("parameters", [])
             if parameter.get("name") in filters]
    item["get"]["parameters"][:0] = taken
    document.setdefault("paths", {})[path] = item


# -- inlining other documents' schemas -----------------------------------------------------


def _inline_external_refs(document: dict[str, Any]) -> None:
    """Replace every ``$ref`` into another document by one into ``components.schemas``,
    copying the schema (and those it refers to) from the bundled copy of that document."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    sources: dict[str, Any] = {}
    names: dict[tuple[str, str], str] = {}

    def local_name(url: str, pointer: str) -> str:
        key = (url, pointer)
        if key in names:
            return names[key]
        if url not in BUNDLED:
            raise UnbundledReference(
                f"the TES document refers to {url}#{pointer}, which is not bundled: save a "
                "copy in tes_core/openapi and add it to BUNDLED in tes_core/api/spec.py"
            )
        if url not in sources:
            sources[url] = load_yaml(_read(BUNDLED[url]))
        prefix = "/components/schemas/"
        name = pointer[len(prefix):]
        if not pointer.startswith(prefix) or not name or "/" in name:
            raise UnbundledReference(f"cannot inline {url}#{pointer}: not a schema")
        if name in schemas:
            raise UnbundledReference(f"cannot inline {url}#{pointer}: the TES document "
                                     f"has a schema named {name!r} already")
        names[key] = name
        schema = copy.deepcopy(sources[url]["components"]["schemas"][name])
        schemas[name] = schema  # before the walk: a schema may refer to itself
        rewrite(schema, url)
        return name

    def rewrite(node: Any, base: str | None) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target, _, pointer = ref.partition("#")
                # "#/..." stays in the document it was written in; "x.yaml#/..." is beside it
                url = urljoin(base, target) if base and target else (target or base)
                if url is not None:
                    node["$ref"] = f"#/components/schemas/{local_name(url, pointer)}"
            for value in list(node.values()):
                rewrite(value, base)
        elif isinstance(node, list):
            for value in node:
                rewrite(value, base)

    rewrite(document, None)


# -- reading -----------------------------------------------------------------------------


def _read(name: str) -> str:
    return files("tes_core.openapi").joinpath(name).read_text(encoding="utf-8")


class _TextTimestamps(yaml.SafeLoader):
    """YAML without the implicit timestamp type: the spec's unquoted example times
    (``2020-10-02T10:00:00-05:00``) stay strings, which JSON can hold."""


_TextTimestamps.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects), keeping timestamps as text."""
    return yaml.load(text, Loader=_TextTimestamps)  # a SafeLoader
