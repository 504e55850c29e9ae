"""The node-local content cache: one download per object version, copied into every task.

Entries are keyed by the URL without its query string (a SAS token changes per task, the
blob does not) plus the object's version (ETag, else size and modification time), so a
changed object is a new entry and is fetched again; the caller always asks the store for
that version with the task's own credentials first, so the cache never serves content a
task could not read. A task never gets a link to an entry: each use is a copy into the
task's folder (a task may write into its inputs, and a hard link would let it change what
the next task, perhaps another user's, receives). The SHA-256 digest of every entry is
stored with it when it is inserted and checked while the entry is copied out (the bytes
are read then anyway); an entry whose content no longer matches is thrown away and
fetched again. The cache is bounded: after each insert the least recently used entries
are removed until the total is under ``max_bytes``. Locks are ``flock`` files, so several
processes on one node (the local backend's workers, filetransfer containers sharing a
host folder) share one cache safely and fetch each object once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .fsutil import atomic_target, copy_and_digest
from .progress import Progress, logger
from .storage.base import RemoteFile
from .urls import redact_url

_READ_ONLY = 0o444


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False if not blocking and busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing drops the lock


class ContentCache:
    """A bounded LRU cache of downloaded objects in ``folder`` (see the module doc)."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        for sub in ("objects", "locks", "tmp"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)

    def cacheable(self, info: RemoteFile) -> bool:
        """True if ``info`` has a version to check and fits in the cache."""
        return info.version is not None and (info.size or 0) <= self.max_bytes

    def _key(self, info: RemoteFile) -> str:
        text = f"{redact_url(info.url)}\n{info.version}"
        return hashlib.sha256(text.encode()).hexdigest()

    def fetch(
        self, info: RemoteFile, dest: Path, download: Callable[[Path], int]
    ) -> tuple[bool, int]:
        """Copy the content of ``info`` to ``dest``; ``(downloaded, size)``.

        ``downloaded`` is True if the object had to be fetched. ``download(path)`` fetches
        the object into ``path`` (atomically) and is called at most once per object version
        across every task on this node, unless a stored entry fails its content check.
        ``dest``'s folder must exist; ``dest`` is replaced all at once.
        """
        key = self._key(info)
        entry = self.folder / "objects" / key
        with _flock(self.folder / "locks" / key):
            size = self._reuse(entry, dest)
            downloaded = size is None
            if size is None:
                size = self._insert(info, key, entry, dest, download)
            else:
                logger.info("cache hit for %s (%s)", redact_url(info.url), info.version)
            # Last use, for the LRU order. An explicit time: the kernel's own "now" is only
            # as fine as its clock tick, which made uses milliseconds apart tie.
            now = time.time_ns()
            os.utime(entry.with_suffix(".json"), ns=(now, now))
        if downloaded:
            self.evict(keep=key)
        return downloaded, size

    def _reuse(self, entry: Path, dest: Path) -> int | None:
        """Copy a stored entry to ``dest`` if its content is as stored; its size, else None."""
        try:
            meta = json.loads(entry.with_suffix(".json").read_text())
            stored = entry.stat().st_size
        except (OSError, ValueError):
            return None
        digest = meta.get("sha256")
        if isinstance(digest, str) and stored == meta.get("size"):
            try:
                with atomic_target(dest) as part:
                    size, found = copy_and_digest(entry, part, _progress(entry, dest))
                    if found != digest:
                        raise _Mismatch
                return size
            except _Mismatch:
                pass
        logger.warning("cache entry for %s was modified; fetching it again", meta.get("url"))
        self._remove(entry)
        return None

    def _insert(
        self, info: RemoteFile, key: str, entry: Path, dest: Path,
        download: Callable[[Path], int],
    ) -> int:
        """Download into the cache, copy to ``dest`` (hashing it), then store the entry."""
        tmp = self.folder / "tmp" / f"{key}.{secrets.token_hex(4)}"
        try:
            download(tmp)
            with atomic_target(dest) as part:
                size, digest = copy_and_digest(tmp, part, _progress(entry, dest))
            os.chmod(tmp, _READ_ONLY)
            os.replace(tmp, entry)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        meta = {"url": redact_url(info.url), "version": info.version, "size": size,
                "sha256": digest}
        _write_json(entry.with_suffix(".json"), meta)
        return size

    def _remove(self, entry: Path) -> None:
        for path in (entry, entry.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def total_bytes(self) -> int:
        """Bytes held by the cache's entries now."""
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[Path, int, int]]:
        """(entry, size, last use) of every complete entry."""
        found = []
        for meta in (self.folder / "objects").glob("*.json"):
            entry = meta.with_suffix("")
            try:
                found.append((entry, entry.stat().st_size, meta.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
        return found

    def evict(self, keep: str = "") -> None:
        """Remove least recently used entries until the total fits ``max_bytes``.

        Entries in use (their lock held) and the entry named ``keep`` stay.
        """
        with _flock(self.folder / "evict.lock"):
            entries = sorted(self._entries(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            for entry, size, _ in entries:
                if total <= self.max_bytes:
                    break
                if entry.name == keep:
                    continue
                with _flock(self.folder / "locks" / entry.name, blocking=False) as got:
                    if not got:
                        continue
                    self._remove(entry)
                    total -= size
                    logger.info("cache: evicted %s (%d bytes)", entry.name, size)


def _write_json(path: Path, data: dict[str, object]) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(json.dumps(data))


class _Mismatch(Exception):
    """A cache entry's content differs from the digest stored with it."""


def _progress(entry: Path, dest: Path) -> Progress:
    return Progress(f"copy cached {entry.name} -> {dest}", announce=False)
