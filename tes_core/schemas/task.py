"""The TES task document as clients send it (``tesTask`` and its parts).

Loading validates and normalises: ``type`` defaults to FILE, read-only fields
(``id``, ``state``, ``logs``, ``creation_time``) and unknown fields are dropped,
absent optional fields stay absent.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from tes_runner.images import image_reference_problem

from .fast import fast_load_task
from .limits import DEFAULT_LIMITS, TaskLimits, count_problems, value_problems
from .validators import (
    FILE_TYPES,
    MAX_TAG_BYTES,
    MAX_TAG_KEY,
    absolute_path,
    has_wildcard,
    tag_fits,
)

SURROGATE = re.compile("[\ud800-\udfff]")
INLINE_CONTENT = re.compile(r"inputs\.\d+\.content")


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE

    @post_load
    def drop_nones(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """An explicit ``null`` means "not given": store nothing for it."""
        return {key: value for key, value in data.items() if value is not None}


def _path(**kwargs: Any) -> fields.String:
    return fields.String(validate=absolute_path, allow_none=not kwargs.get("required"), **kwargs)


def _boolean() -> fields.Boolean:
    """A JSON boolean: ``true``/``false`` only, not "yes" or 1."""
    return fields.Boolean(allow_none=True, truthy={True}, falsy={False})


class JsonNumber(fields.Float):
    """A JSON number (integer or not) as a float; strings and booleans are rejected."""

    default_error_messages = {"invalid": "Not a valid number (send a JSON number, not text)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _text() -> fields.String:
    return fields.String(allow_none=True)


def _image_reference(value: str) -> None:
    """Refuse an image that is not a container image reference (see :mod:`tes_runner.images`)."""
    problem = image_reference_problem(value)
    if problem:
        raise ValidationError(problem)


class ExecutorSchema(_Strict):
    """``tesExecutor``: one container run."""

    image = fields.String(required=True, validate=_image_reference)
    command = fields.List(
        fields.String(),
        required=True,
        validate=validate.Length(min=1, error="must hold at least one argument"),
        error_messages={"invalid": "must be a list of strings (argv), not one shell string"},
    )
    workdir = _path()
    stdin = _path()
    stdout = _path()
    stderr = _path()
    env = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    ignore_error = _boolean()


class InputSchema(_Strict):
    """``tesInput``: a file or folder staged into the task before it runs."""

    name = _text()
    description = _text()
    url = _text()
    path = _path(required=True)
    type = fields.String(validate=validate.OneOf(FILE_TYPES), load_default="FILE", allow_none=True)
    content = _text()
    streamable = _boolean()

    @validates_schema
    def url_or_content(self, data: dict[str, Any], **_: Any) -> None:
        """``url`` is required unless inline ``content`` is given."""
        if data.get("content") is None and not data.get("url"):
            raise ValidationError("required unless 'content' is given", "url")

    @post_load
    def content_wins(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """With inline content, ``url`` is ignored (spec): do not keep it."""
        if data.get("content") is not None:
            data.pop("url", None)
        if data.get("type") is None:
            data["type"] = "FILE"
        return data


class OutputSchema(_Strict):
    """``tesOutput``: a file, folder or wildcard uploaded after the executors."""

    name = _text()
    description = _text()
    url = fields.String(required=True, validate=validate.Length(min=1, error="must not be empty"))
    path = _path(required=True)
    path_prefix = _path()
    type = fields.String(validate=validate.OneOf(FILE_TYPES), load_default="FILE", allow_none=True)

    @validates_schema
    def wildcard_needs_prefix(self, data: dict[str, Any], **_: Any) -> None:
        """A wildcard path needs a ``path_prefix`` that it starts with."""
        path = data.get("path") or ""
        if not has_wildcard(path):
            return
        prefix = data.get("path_prefix")
        if not prefix:
            raise ValidationError("required when 'path' holds wildcards", "path_prefix")
        if not path.startswith(prefix):
            raise ValidationError(f"{path!r} does not start with {prefix!r}", "path_prefix")

    @post_load
    def default_type(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Fill in FILE when the client sent ``type: null``."""
        if data.get("type") is None:
            data["type"] = "FILE"
        return data


class ResourcesSchema(_Strict):
    """``tesResources``: requests and hints for the backend."""

    cpu_cores = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0))
    preemptible = _boolean()
    ram_gb = JsonNumber(allow_none=True, validate=validate.Range(min=0))
    disk_gb = JsonNumber(allow_none=True, validate=validate.Range(min=0))
    zones = fields.List(fields.String(), allow_none=True)
    backend_parameters = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    backend_parameters_strict = _boolean()


class TaskSchema(_Strict):
    """``tesTask`` as submitted; only ``executors`` is required."""

    name = _text()
    description = _text()
    inputs = fields.List(fields.Nested(InputSchema), allow_none=True)
    outputs = fields.List(fields.Nested(OutputSchema), allow_none=True)
    resources = fields.Nested(ResourcesSchema, allow_none=True)
    executors = fields.List(
        fields.Nested(ExecutorSchema),
        required=True,
        validate=validate.Length(min=1, error="at least one executor is required"),
    )
    volumes = fields.List(fields.String(validate=absolute_path), allow_none=True)
    tags = fields.Dict(
        keys=fields.String(validate=validate.Length(max=MAX_TAG_KEY, error=(
            f"tag keys must be at most {MAX_TAG_KEY} characters long"))),
        values=fields.String(allow_none=True),
        allow_none=True,
    )

    @validates_schema
    def tags_fit(self, data: dict[str, Any], **_: Any) -> None:
        """Tags are indexed, so a tag's key and value together have a size limit."""
        for key, value in (data.get("tags") or {}).items():
            if not tag_fits(key, value or ""):
                raise ValidationError(
                    f"key and value together must be at most {MAX_TAG_BYTES} bytes (UTF-8)",
                    f"tags.{key[:40]}",
                )

    @post_load
    def null_tag_values_as_empty(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """A ``null`` tag value is stored as ``""`` (the key alone, as TES tags allow).

        Cromwell 87+ sends ``"parent_workflow_id": null`` for every root workflow.
        """
        tags = data.get("tags")
        if tags:
            data["tags"] = {key: "" if value is None else value for key, value in tags.items()}
        return data


_TASK_SCHEMA = TaskSchema()


def load_task(document: Any, limits: TaskLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Validate and normalise a submitted task; raise ``ValidationError`` naming each field.

    Valid documents take the fast path (:mod:`.fast`); anything else goes through the
    marshmallow schemas, the reference, which also word the errors.
    """
    if not isinstance(document, dict):
        raise ValidationError("the task must be a JSON object", "_schema")
    task = fast_load_task(document, limits)
    if task is not None:
        return task
    return reference_load(document, limits)


def reference_load(
    document: dict[str, Any], limits: TaskLimits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """:func:`load_task` without the fast path: counts first (an oversized list is refused
    before it is loaded), then the schemas, then text and size checks of the loaded task."""
    problems = count_problems(document, limits)
    if problems:
        raise ValidationError(problems)
    task = _TASK_SCHEMA.load(document)
    _check_text(task, "", problems)
    for where, reasons in value_problems(task, limits).items():
        problems.setdefault(where, reasons)
    if problems:
        raise ValidationError(problems)
    return task


def _check_text(value: Any, where: str, problems: dict[str, list[str]]) -> None:
    """Every string must be storable text: no unpaired UTF-16 surrogate (``"\\ud800"`` in
    JSON cannot be encoded as UTF-8) and no NUL character (PostgreSQL text rejects it),
    except NUL inside inline input ``content``, which is stored escaped."""
    if isinstance(value, str):
        if SURROGATE.search(value):
            problems[where] = ["must be valid Unicode text (it holds an unpaired surrogate)"]
        elif "\x00" in value and not INLINE_CONTENT.fullmatch(where):
            problems[where] = ["must not contain NUL characters"]
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key.encode("utf-8", "backslashreplace").decode("utf-8")
            name = f"{where}.{name}" if where else name
            _check_text(key, name, problems)
            _check_text(item, name, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}.{index}", problems)
