"""Staging TES inputs into a task's root folder before the executors run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .describe import DIRECTORY, describe, file_type
from .errors import TransferError
from .fsutil import atomic_target
from .paths import check_container_path, host_path
from .progress import logger
from .storage import storage_for
from .urls import redact_url, scrub_text, url_scheme


def stage_inputs(inputs: Iterable[Mapping[str, Any]], root: Path) -> list[str]:
    """Fetch every TES input into ``root/<path without leading slash>``.

    Each input is a TES ``tesInput`` dict (``path``, ``url`` or ``content``, optional
    ``type``, ``name``). Inline ``content`` (UTF-8 text) is written as is and ``url`` is then
    ignored. ``DIRECTORY`` inputs copy a whole tree (local paths, ``file://`` and plugins
    whose store can list; not plain HTTP). Parent folders are created.

    Returns one human-readable line per input (URLs redacted). Raises
    :class:`TransferError` on the first input that fails, naming it, its redacted URL and
    what to do next.
    """
    root = Path(root)
    lines: list[str] = []
    for index, item in enumerate(inputs):
        line = _stage_one(item, root, index)
        logger.info("%s", line)
        lines.append(line)
    return lines


def _stage_one(item: Mapping[str, Any], root: Path, index: int) -> str:
    what = describe("input", item, index)
    path = check_container_path(item.get("path"), what)
    kind = file_type(item, what)
    content = item.get("content")
    url = item.get("url")
    dest = host_path(root, path)
    try:
        if content is not None and (content != "" or not url):
            return f"{what}: " + _write_content(content, kind, dest, path)
        if not isinstance(url, str) or not url:
            raise TransferError("it has neither 'url' nor 'content': give one of them")
        storage = storage_for(url)
        if kind == DIRECTORY:
            count = storage.download_dir(url, dest)
            return f"{what}: copied folder {redact_url(url)} to {path} ({count} files)"
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = storage.download(url, dest)
        return f"{what}: fetched {redact_url(url)} to {path} ({size} bytes)"
    except TransferError as exc:
        raise TransferError(f"{what}: {exc}") from None
    except OSError as exc:
        raise TransferError(
            f"{what}: writing {path} failed: {exc.strerror or exc}: "
            "check the task folder's permissions and free space"
        ) from None
    except Exception as exc:  # a storage plugin's own bug: still report it as a transfer error
        raise TransferError(
            f"{what}: the {url_scheme(str(url)) or 'local'} storage failed "
            f"({type(exc).__name__}: {scrub_text(str(exc))}): report this to its maintainers"
        ) from None


def _write_content(content: Any, kind: str, dest: Path, path: str) -> str:
    if kind == DIRECTORY:
        raise TransferError("inline content makes a single file: set type FILE")
    if not isinstance(content, str):
        raise TransferError("'content' must be a string of UTF-8 text")
    data = content.encode("utf-8")
    with atomic_target(dest) as tmp:
        tmp.write_bytes(data)
    return f"wrote {len(data)} bytes of inline content to {path}"
