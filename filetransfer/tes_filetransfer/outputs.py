"""Uploading TES outputs from a task's root folder after the executors ran."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from . import beneath
from .config import TransferConfig
from .describe import describe, file_type, reported_as
from .errors import TransferError
from .interrupt import interruptible
from .paths import check_container_path, resolve_in_root
from .policy import bound, current_policy, using_policy
from .pool import run_all
from .progress import logger
from .retry import with_retries
from .stats import TransferStats
from .storage import Storage, storage_for
from .urls import join_url, redact_url

_MAGIC = frozenset("*?[")


def has_wildcards(path: str) -> bool:
    """True if ``path`` holds a POSIX pattern character (``*``, ``?`` or ``[``)."""
    return any(ch in _MAGIC for ch in path)


def upload_outputs(
    outputs: Iterable[Mapping[str, Any]],
    root: Path,
    *,
    config: TransferConfig | None = None,
    stats: TransferStats | None = None,
    interrupt: threading.Event | None = None,
) -> list[dict[str, str]]:
    """Upload every TES output found under ``root``; return TES ``tesOutputFileLog`` dicts.

    Each output is a TES ``tesOutput`` dict (``path``, ``url``, optional ``type``,
    ``path_prefix``, ``name``). The container path ``/x/y`` is read from ``root/x/y``;
    symlinks are resolved inside ``root``, never on the host.

    * A path with wildcards (``*``, ``?``, ``[...]``) is matched under ``root``; each match
      goes to ``url`` + (its path minus ``path_prefix``). No match means no entries.
    * A folder (``type: DIRECTORY`` or a path that is a folder) is uploaded file by file to
      ``url`` + ``/`` + the file's path inside the folder.
    * A missing output raises :class:`TransferError` naming it.

    Files go ``config.parallel`` at a time (default :meth:`TransferConfig.from_env`),
    each retried on transient errors. Returns one ``{"url", "path", "size_bytes"}`` dict
    per uploaded file in output order, ``size_bytes`` a string. URLs in the returned logs
    are redacted (no query string, no credentials). Setting ``interrupt`` (or the current
    one, :mod:`.interrupt`) stops the uploads within moments with
    :class:`~tes_filetransfer.interrupt.Interrupted`.
    """
    config = config or TransferConfig.from_env()
    stats = stats if stats is not None else TransferStats()
    root = Path(root)
    policy = config.policy.deny(root)  # outputs never land in the task's own folder
    with using_policy(policy), interruptible(interrupt):
        planned: list[_Upload] = []
        for index, item in enumerate(outputs):
            planned.extend(_plan_one(item, root, index))
        jobs = [bound(policy, _job(upload, config, stats, root)) for upload in planned]
        return run_all(jobs, config.parallel)


@dataclass(frozen=True)
class _Upload:
    """One file to upload: which output it belongs to, where it is, where it goes."""

    what: str
    storage: Storage
    host: Path
    container_path: str
    url: str


def _job(
    upload: _Upload, config: TransferConfig, stats: TransferStats, root: Path
) -> Callable[[], dict[str, str]]:
    # The file is opened beneath root without following links, so a link planted after
    # resolve_in_root (by a task sharing the folder) cannot make us read a host file.
    rel = upload.host.relative_to(root).as_posix()

    def run() -> dict[str, str]:
        with reported_as(upload.what, upload.url, upload.host, upload=True), \
                beneath.reading(root, rel) as src:
            size = with_retries(
                lambda: upload.storage.upload(src, upload.url),
                label=redact_url(upload.url), attempts=config.attempts, backoff=config.backoff,
            )
        stats.add(uploaded=size)
        return {"url": redact_url(upload.url), "path": upload.container_path,
                "size_bytes": str(size)}

    return run


def _plan_one(item: Mapping[str, Any], root: Path, index: int) -> list[_Upload]:
    what = describe("output", item, index)
    path = check_container_path(item.get("path"), what)
    file_type(item, what)  # validates; a folder is recognised from the disk either way
    url = item.get("url")
    if not isinstance(url, str) or not url:
        raise TransferError(f"{what}: 'url' is missing: give the URL to upload to")
    with reported_as(what, url, path, upload=True):
        storage = storage_for(url)
        current_policy().check_url(url)  # before any storage sees it, plugins' too
        if has_wildcards(path):
            found = _match_pattern(root, item, path, url, what)
        else:
            host = resolve_in_root(root, path)
            if host.is_dir():
                found = _files_in_dir(root, path, url)
            elif host.is_file():
                found = [(host, path, url)]
            elif host.exists():
                raise TransferError(f"{path} is not a regular file or folder: write a plain file")
            else:
                raise TransferError(
                    f"no file at {path} after the task ran: check that the executors write "
                    "it (and that the path is inside a volume or input folder)"
                )
    return [_Upload(what, storage, host, cpath, target) for host, cpath, target in found]


def _files_in_dir(root: Path, container_dir: str, base_url: str) -> list[tuple[Path, str, str]]:
    """(host file, container path, URL) of every file below ``container_dir``, sorted."""
    host_dir = resolve_in_root(root, container_dir)
    found: list[tuple[Path, str, str]] = []

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
            found.append((host, container_path, join_url(base_url, rel)))
    return found


def _match_pattern(
    root: Path, item: Mapping[str, Any], pattern: str, url: str, what: str
) -> list[tuple[Path, str, str]]:
    prefix = item.get("path_prefix")
    if not isinstance(prefix, str) or not prefix:
        prefix = default_prefix(pattern)
        logger.warning("%s: no path_prefix for a wildcard path; using %r", what, prefix)
    found: list[tuple[Path, str, str]] = []
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
            found.extend(_files_in_dir(root, container_path, target))
        elif host.is_file():
            found.append((host, container_path, target))
        else:
            logger.warning("skipping %s: not a regular file", container_path)
    return found


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
