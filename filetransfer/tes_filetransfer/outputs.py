"""Uploading TES outputs from a task's root folder after the executors ran."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .describe import describe, file_type
from .errors import TransferError
from .paths import check_container_path, resolve_in_root
from .progress import logger
from .storage import Storage, storage_for
from .urls import join_url, redact_url, scrub_text, url_scheme

_MAGIC = frozenset("*?[")


def has_wildcards(path: str) -> bool:
    """True if ``path`` holds a POSIX pattern character (``*``, ``?`` or ``[``)."""
    return any(ch in _MAGIC for ch in path)


def upload_outputs(outputs: Iterable[Mapping[str, Any]], root: Path) -> list[dict[str, str]]:
    """Upload every TES output found under ``root``; return TES ``tesOutputFileLog`` dicts.

    Each output is a TES ``tesOutput`` dict (``path``, ``url``, optional ``type``,
    ``path_prefix``, ``name``). The container path ``/x/y`` is read from ``root/x/y``;
    symlinks are resolved inside ``root``, never on the host.

    * A path with wildcards (``*``, ``?``, ``[...]``) is matched under ``root``; each match
      goes to ``url`` + (its path minus ``path_prefix``). No match means no entries.
    * A folder (``type: DIRECTORY`` or a path that is a folder) is uploaded file by file to
      ``url`` + ``/`` + the file's path inside the folder.
    * A missing output raises :class:`TransferError` naming it.

    Returns one ``{"url", "path", "size_bytes"}`` dict per uploaded file, ``size_bytes`` a
    string. URLs in the returned logs are redacted (no query string, no credentials).
    """
    root = Path(root)
    logs: list[dict[str, str]] = []
    for index, item in enumerate(outputs):
        logs.extend(_upload_one(item, root, index))
    return logs


def _upload_one(item: Mapping[str, Any], root: Path, index: int) -> list[dict[str, str]]:
    what = describe("output", item, index)
    path = check_container_path(item.get("path"), what)
    file_type(item, what)  # validates; a folder is recognised from the disk either way
    url = item.get("url")
    if not isinstance(url, str) or not url:
        raise TransferError(f"{what}: 'url' is missing: give the URL to upload to")
    try:
        storage = storage_for(url)
        if has_wildcards(path):
            return _upload_pattern(storage, root, item, path, url, what)
        host = resolve_in_root(root, path)
        if host.is_dir():
            return _upload_dir(storage, root, path, url)
        if host.is_file():
            return [_upload_file(storage, host, path, url)]
        if host.exists():
            raise TransferError(f"{path} is not a regular file or folder: write a plain file")
        raise TransferError(
            f"no file at {path} after the task ran: check that the executors write it "
            "(and that the path is inside a volume or input folder)"
        )
    except TransferError as exc:
        raise TransferError(f"{what}: {exc}") from None
    except OSError as exc:
        raise TransferError(
            f"{what}: reading {exc.filename or path} failed: {exc.strerror or exc}: "
            "check the task folder's permissions"
        ) from None
    except Exception as exc:  # a storage plugin's own bug: still report it as a transfer error
        raise TransferError(
            f"{what}: the {url_scheme(url) or 'local'} storage failed uploading to "
            f"{redact_url(url)} ({type(exc).__name__}: {scrub_text(str(exc))}): "
            "report this to its maintainers"
        ) from None


def _upload_file(storage: Storage, host: Path, container_path: str, url: str) -> dict[str, str]:
    size = storage.upload(host, url)
    return {"url": redact_url(url), "path": container_path, "size_bytes": str(size)}


def _upload_dir(
    storage: Storage, root: Path, container_dir: str, base_url: str
) -> list[dict[str, str]]:
    """Upload every file below the container folder ``container_dir``, sorted by path."""
    host_dir = resolve_in_root(root, container_dir)
    logs: list[dict[str, str]] = []

    def fail(exc: OSError) -> None:
        raise exc

    for dirpath, dirnames, filenames in os.walk(host_dir, onerror=fail):
        here = Path(dirpath)
        dirnames.sort()
        for name in dirnames:
            if (here / name).is_symlink():
                logger.warning("not following the linked folder %s", here / name)
        for name in sorted(filenames):
            rel = (here / name).relative_to(host_dir).as_posix()
            container_path = container_dir.rstrip("/") + "/" + rel
            host = here / name
            if host.is_symlink():
                host = resolve_in_root(root, container_path)
            if not host.is_file():
                logger.warning("skipping %s: not a regular file", container_path)
                continue
            logs.append(_upload_file(storage, host, container_path, join_url(base_url, rel)))
    return logs


def _upload_pattern(
    storage: Storage,
    root: Path,
    item: Mapping[str, Any],
    pattern: str,
    url: str,
    what: str,
) -> list[dict[str, str]]:
    prefix = item.get("path_prefix")
    if not isinstance(prefix, str) or not prefix:
        prefix = default_prefix(pattern)
        logger.warning("%s: no path_prefix for a wildcard path; using %r", what, prefix)
    logs: list[dict[str, str]] = []
    matches = glob_in_root(root, pattern)
    if not matches:
        logger.info("%s: nothing matches %s", what, pattern)
    for container_path in matches:
        if not container_path.startswith(prefix):
            raise TransferError(
                f"path_prefix {prefix!r} is not a prefix of the matched {container_path}: "
                "fix the output's path_prefix"
            )
        target = join_url(url, container_path[len(prefix):])
        host = resolve_in_root(root, container_path)
        if host.is_dir():
            logs.extend(_upload_dir(storage, root, container_path, target))
        elif host.is_file():
            logs.append(_upload_file(storage, host, container_path, target))
        else:
            logger.warning("skipping %s: not a regular file", container_path)
    return logs


def default_prefix(pattern: str) -> str:
    """The folder part of ``pattern`` before its first wildcard, e.g. ``/out/`` for
    ``/out/*.txt``: used when a wildcard output has no ``path_prefix``."""
    fixed: list[str] = []
    for part in pattern.split("/"):
        if has_wildcards(part):
            break
        fixed.append(part)
    return "/".join(fixed).rstrip("/") + "/"


def glob_in_root(root: Path, pattern: str) -> list[str]:
    """Container paths under ``root`` that match the POSIX pattern ``pattern``, sorted.

    Matching is per path component (``*`` never crosses ``/``; ``**`` is just ``*``), names
    starting with ``.`` only match a component that starts with ``.``, and folders are
    listed after resolving symlinks inside ``root``.
    """
    current = [""]
    for part in (p for p in pattern.split("/") if p):
        found: list[str] = []
        for base in current:
            if not has_wildcards(part):
                found.append(f"{base}/{part}")
                continue
            try:
                names = sorted(os.listdir(resolve_in_root(root, base or "/")))
            except (NotADirectoryError, FileNotFoundError):
                continue
            for name in names:
                if name.startswith(".") and not part.startswith("."):
                    continue
                if fnmatchcase(name, part):
                    found.append(f"{base}/{name}")
        current = found
    return sorted(c for c in current if resolve_in_root(root, c).exists())
