"""Staging TES inputs into a task's root folder before the executors run.

Every file to fetch (FILE inputs and the files of DIRECTORY inputs) becomes one job of a
bounded pool; each job goes through the node-local content cache when one is configured
and the store can tell the object's version, and is retried on transient errors.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import beneath
from .cache import ContentCache
from .config import TransferConfig
from .describe import DIRECTORY, describe, file_type, reported_as
from .errors import TransferError
from .fsutil import atomic_target
from .interrupt import Interrupted, interruptible
from .paths import check_container_path, host_path
from .policy import AccessDenied, bound, current_policy, using_policy
from .pool import call, run_all
from .progress import logger
from .retry import with_retries
from .stats import TransferStats
from .storage import Storage, storage_for
from .storage.base import RemoteFile
from .urls import redact_url


@dataclass
class _Input:
    """One input, planned: its description, destination and the file jobs it needs."""

    what: str
    path: str
    url: str
    line: str = ""
    files: int = 0
    size: int = 0


@dataclass
class _Work:
    """The file jobs of one :func:`stage_inputs` call and how they run.

    Destinations are reached from ``root_fd`` without following symlinks
    (:mod:`.beneath`): an earlier task sharing the folder (``/tes-wd/shared-global``)
    may have planted links in it, and the server must never write through them.
    """

    config: TransferConfig
    cache: ContentCache | None
    stats: TransferStats
    root_fd: int
    jobs: list[Callable[[], None]] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    """Folders (relative to the root) already created: made once while planning."""

    def folder(self, rel: str) -> None:
        """Create the folder ``rel`` (and its parents) unless this run already did."""
        if rel not in self.folders:
            os.close(beneath.open_dir(self.root_fd, rel, create=True))
            self.folders.add(rel)

    @contextlib.contextmanager
    def target(self, rel: str) -> Iterator[Path]:
        """A path for writing the file ``rel``, its folder pinned while the block runs."""
        parent, name = beneath.split(rel)
        with beneath.folder(self.root_fd, parent) as where:
            yield where / name


def stage_inputs(
    inputs: Iterable[Mapping[str, Any]],
    root: Path,
    *,
    config: TransferConfig | None = None,
    stats: TransferStats | None = None,
    interrupt: threading.Event | None = None,
) -> list[str]:
    """Fetch every TES input into ``root/<path without leading slash>``.

    Each input is a TES ``tesInput`` dict (``path``, ``url`` or ``content``, optional
    ``type``, ``name``, ``streamable``). Inline ``content`` (UTF-8 text) is written as is
    and ``url`` is then ignored. ``DIRECTORY`` inputs fetch every object under the URL
    (a folder or prefix). ``streamable`` inputs are fetched like the others (allowed by
    the spec; the cache makes repeated ones free). Files move ``config.parallel`` at a
    time (default: :meth:`TransferConfig.from_env`), through the content cache if
    ``config.cache_dir`` is set; ``stats`` (if given) counts the bytes and files, and
    the files it expects to move once they are planned (so another thread can show progress).
    Setting ``interrupt`` (or the current one, :mod:`.interrupt`) stops the staging within
    moments with :class:`~tes_filetransfer.interrupt.Interrupted`.

    Returns one human-readable line per input (URLs redacted). Raises
    :class:`TransferError` naming the first input that failed, its redacted URL and what
    to do next; files of inputs already fetched stay, nothing is half-written.
    """
    config = config or TransferConfig.from_env()
    stats = stats if stats is not None else TransferStats()
    cache = ContentCache(config.cache_dir, config.cache_max_bytes) if config.cache_dir else None
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    root_fd = beneath.open_root(root, follow=True)  # the caller's root is trusted
    try:
        work = _Work(config, cache, stats, root_fd)
        policy = config.policy.deny(root)  # a DIRECTORY input never copies into the task
        with using_policy(policy), interruptible(interrupt):
            planned = [_plan(item, root, index, work) for index, item in enumerate(inputs)]
            stats.expect(len(work.jobs))
            run_all([bound(policy, job) for job in work.jobs], config.parallel)
    finally:
        os.close(root_fd)
    lines = []
    for entry in planned:
        if not entry.line:
            entry.line = (
                f"{entry.what}: copied folder {redact_url(entry.url)} to {entry.path} "
                f"({entry.files} files)"
                if entry.files
                else f"{entry.what}: fetched {redact_url(entry.url)} to {entry.path} "
                f"({entry.size} bytes)"
            )
        logger.info("%s", entry.line)
        lines.append(entry.line)
    return lines


def _plan(item: Mapping[str, Any], root: Path, index: int, work: _Work) -> _Input:
    """Validate one input; write inline content now, queue file jobs for the rest."""
    what = describe("input", item, index)
    path = check_container_path(item.get("path"), what)
    kind = file_type(item, what)
    content = item.get("content")
    url = item.get("url")
    rel = path.lstrip("/")
    dest = host_path(root, path)  # for messages; writes go through work.target
    entry = _Input(what, path, url if isinstance(url, str) else "")
    with reported_as(entry.what, entry.url, dest, upload=False):
        if content is not None and (content != "" or not url):
            if kind == DIRECTORY:
                raise TransferError("inline content makes a single file: set type FILE")
            work.folder(beneath.split(rel)[0])
            with work.target(rel) as target:
                entry.line = f"{what}: " + _write_content(content, target, path)
            return entry
        if not isinstance(url, str) or not url:
            raise TransferError("it has neither 'url' nor 'content': give one of them")
        storage = storage_for(url)
        current_policy().check_url(url)  # before any storage sees it, plugins' too
        if kind != DIRECTORY:
            work.folder(beneath.split(rel)[0])
            work.jobs.append(_job(entry, storage, RemoteFile(url, None), rel, dest, work))
            return entry
        lister = getattr(storage, "list_files", None)
        work.folder(rel)
        if lister is None:  # a plugin that can only copy a whole folder itself
            work.jobs.append(_folder_job(entry, storage, rel, dest, work))
            return entry
        files = call(bound(current_policy(), lambda: lister(url)))
        entry.files = len(files)
        for remote in files:
            target = f"{rel}/{remote.relpath}"
            work.folder(beneath.split(target)[0])
            work.jobs.append(_job(entry, storage, remote, target, dest / remote.relpath, work))
    return entry


def _job(
    entry: _Input, storage: Storage, remote: RemoteFile, rel: str, dest: Path, work: _Work
) -> Callable[[], None]:
    """A pool job fetching one file to ``rel`` (through the cache when it can) with retries.

    ``rel``'s folder exists already (made while planning); ``dest`` names it in messages.
    """
    config, cache, stats = work.config, work.cache, work.stats
    label = redact_url(remote.url)

    def download(target: Path) -> int:
        return with_retries(
            lambda: storage.download(remote.url, target),
            label=label, attempts=config.attempts, backoff=config.backoff,
        )

    def run() -> None:
        with reported_as(entry.what, entry.url, dest, upload=False), work.target(rel) as target:
            info = remote
            stat = getattr(storage, "stat", None)
            if cache is not None and stat is not None and info.version is None:
                info = _versioned(remote, stat, label, config)
            if cache is not None and cache.cacheable(info):
                fetched, size = cache.fetch(info, target, download)
                stats.add(downloaded=size if fetched else 0, cached=0 if fetched else size)
            else:
                size = download(target)
                stats.add(downloaded=size)
            entry.size += size

    return run


def _versioned(
    remote: RemoteFile, stat: Callable[[str], RemoteFile], label: str, config: TransferConfig
) -> RemoteFile:
    """``remote`` with its version from the store, for the cache; as it is if the store
    cannot say now (the download that follows reports what is really wrong, if anything).
    A refusal by the access policy is final: the URL is never tried again."""
    try:
        return with_retries(
            lambda: stat(remote.url), label=label,
            attempts=config.attempts, backoff=config.backoff,
        )
    except (Interrupted, AccessDenied):
        raise
    except TransferError as exc:
        logger.warning(
            "%s: its version could not be read, so it is fetched without the node cache: %s",
            label, exc,
        )
        return remote


def _folder_job(
    entry: _Input, storage: Storage, rel: str, dest: Path, work: _Work
) -> Callable[[], None]:
    def run() -> None:
        with reported_as(entry.what, entry.url, dest, upload=False), \
                beneath.folder(work.root_fd, rel) as where:
            entry.files = storage.download_dir(entry.url, where)

    return run


def _write_content(content: Any, dest: Path, path: str) -> str:
    if not isinstance(content, str):
        raise TransferError("'content' must be a string of UTF-8 text")
    data = content.encode("utf-8")
    with atomic_target(dest) as tmp:
        tmp.write_bytes(data)
    return f"wrote {len(data)} bytes of inline content to {path}"
