"""A single-pass loader for task documents that are valid, the common case.

``POST /tasks`` is a hot path and marshmallow spends most of a create's time on
a Cromwell-sized task (a hundred field objects, a dozen nested loads). This
module walks the document once with plain Python and returns exactly what
:class:`~tes_core.schemas.task.TaskSchema` would return, or ``None`` at the
first thing it is not sure about; the caller then runs the marshmallow schemas,
which stay the reference and produce the error messages. A property test
(``tests/test_fast_loader.py``) checks the two agree.
"""

from __future__ import annotations

import math
from typing import Any

from tes_runner.images import image_reference_problem

from .limits import DEFAULT_LIMITS, TaskLimits, fits, top_counts_fit
from .validators import FILE_TYPES, MAX_TAG_KEY, has_wildcard, tag_fits


class _Unsure(Exception):
    """Leave this document to the marshmallow schemas."""


def fast_load_task(
    document: dict[str, Any], limits: TaskLimits = DEFAULT_LIMITS
) -> dict[str, Any] | None:
    """The normalised task if ``document`` is certainly valid and within ``limits``,
    else ``None``."""
    if not top_counts_fit(document, limits):
        return None  # refused before loading (by the reference path, which says why)
    try:
        task = _task(document)
    except _Unsure:
        return None
    return task if fits(task, limits) else None


# -- the document, outside in, fields in the schemas' declared order -------------------


def _task(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "name", _text(doc.get("name")))
    _put(out, "description", _text(doc.get("description")))
    _put(out, "inputs", _records(doc.get("inputs"), _input))
    _put(out, "outputs", _records(doc.get("outputs"), _output))
    _put(out, "resources", _nested(doc.get("resources"), _resources))
    executors = doc.get("executors")
    if not isinstance(executors, list) or not executors:
        raise _Unsure
    out["executors"] = _records(executors, _executor)
    _put(out, "volumes", _items(doc.get("volumes"), _path))
    tags = doc.get("tags")
    if tags is not None:
        if not isinstance(tags, dict):
            raise _Unsure
        clean = {}
        for key, value in tags.items():
            if len(key) > MAX_TAG_KEY or (value is not None and not isinstance(value, str)):
                raise _Unsure
            _plain(key)
            clean[key] = "" if value is None else _plain(value)
            if not tag_fits(key, clean[key]):
                raise _Unsure
        out["tags"] = clean
    return out


def _input(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "name", _text(doc.get("name")))
    _put(out, "description", _text(doc.get("description")))
    url = _text(doc.get("url"))
    _put(out, "url", url)
    out["path"] = _path(doc.get("path"))
    out["type"] = _file_type(doc.get("type"))
    content = doc.get("content")
    if content is not None:
        if not isinstance(content, str) or _has_surrogate(content):
            raise _Unsure
        out["content"] = content  # NUL is allowed in inline content
        out.pop("url", None)
    elif not url:
        raise _Unsure
    _put(out, "streamable", _flag(doc.get("streamable")))
    return out


def _output(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "name", _text(doc.get("name")))
    _put(out, "description", _text(doc.get("description")))
    url = _text(doc.get("url"))
    if not url:
        raise _Unsure
    out["url"] = url
    path = out["path"] = _path(doc.get("path"))
    prefix = doc.get("path_prefix")
    if prefix is not None:
        out["path_prefix"] = _path(prefix)
    if has_wildcard(path) and (not prefix or not path.startswith(prefix)):
        raise _Unsure
    out["type"] = _file_type(doc.get("type"))
    return out


def _resources(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cores = doc.get("cpu_cores")
    if cores is not None:
        if type(cores) is not int or cores < 0:
            raise _Unsure
        out["cpu_cores"] = cores
    _put(out, "preemptible", _flag(doc.get("preemptible")))
    _put(out, "ram_gb", _amount(doc.get("ram_gb")))
    _put(out, "disk_gb", _amount(doc.get("disk_gb")))
    _put(out, "zones", _items(doc.get("zones"), _plain))
    _put(out, "backend_parameters", _string_map(doc.get("backend_parameters")))
    _put(out, "backend_parameters_strict", _flag(doc.get("backend_parameters_strict")))
    return out


def _executor(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    image = doc.get("image")
    if not isinstance(image, str) or image_reference_problem(image):
        raise _Unsure
    out["image"] = _plain(image)
    command = doc.get("command")
    if not isinstance(command, list) or not command:
        raise _Unsure
    out["command"] = [_plain(arg) for arg in command]
    for key in ("workdir", "stdin", "stdout", "stderr"):
        value = doc.get(key)
        if value is not None:
            out[key] = _path(value)
    _put(out, "env", _string_map(doc.get("env")))
    _put(out, "ignore_error", _flag(doc.get("ignore_error")))
    return out


# -- values ----------------------------------------------------------------------------


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _nested(value: Any, load: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Unsure
    return load(value)


def _records(value: Any, load: Any) -> list[dict[str, Any]] | None:
    """A list of objects (inputs, outputs), each loaded by ``load``."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _Unsure
    return [_nested(item, load) if item is not None else _fail() for item in value]


def _items(value: Any, load: Any) -> list[Any] | None:
    """A list of scalars (volumes, zones), each checked by ``load``."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _Unsure
    return [load(item) for item in value]


def _fail() -> Any:
    raise _Unsure


def _plain(value: Any) -> str:
    """A string that is storable text: no NUL, no unpaired surrogate."""
    if not isinstance(value, str) or "\x00" in value or _has_surrogate(value):
        raise _Unsure
    return value


def _text(value: Any) -> str | None:
    return None if value is None else _plain(value)


def _has_surrogate(value: str) -> bool:
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _path(value: Any) -> str:
    path = _plain(value)
    if not path.startswith("/") or ".." in path.split("/"):
        raise _Unsure
    return path


def _file_type(value: Any) -> str:
    if value is None:
        return "FILE"
    if value not in FILE_TYPES:
        raise _Unsure
    return value


def _flag(value: Any) -> bool | None:
    if value is None or value is True or value is False:
        return value
    raise _Unsure


def _amount(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float):
        raise _Unsure
    try:
        number = float(value)
    except OverflowError:
        raise _Unsure from None
    if not math.isfinite(number) or number < 0:
        raise _Unsure
    return number


def _string_map(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Unsure
    return {_plain(key): _plain(item) for key, item in value.items()}
