"""A :class:`Storage` on an fsspec file system (Azure Blob, S3, GCS, FTP).

Subclasses only say how a URL maps to a file system and a path in it
(:meth:`FsspecStorage.locate`); listing, stat, downloads and uploads are shared here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Generic, TypeVar

from fsspec import AbstractFileSystem
from fsspec.callbacks import Callback

from ..errors import TransferError
from ..fsutil import atomic_target
from ..progress import Progress
from ..urls import join_url, redact_url
from .base import RemoteFile
from .errors import translate
from .extras import Extra

_MODIFIED_KEYS = ("last_modified", "LastModified", "updated", "mtime", "modify", "modified")

C = TypeVar("C")


class _ProgressCallback(Callback):
    """Forwards fsspec's (absolute or relative) progress to a :class:`Progress`."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self._seen = 0

    def call(self, *args: Any, **kwargs: Any) -> None:
        value = int(self.value or 0)
        if value > self._seen:
            self.progress.update(value - self._seen)
            self._seen = value


class FileSystems(Generic[C]):
    """A small LRU of client objects by key (fsspec file systems, SDK service clients);
    per thread for non-thread-safe ones."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._shared: OrderedDict[Hashable, C] = OrderedDict()
        self._local = threading.local()

    def get(self, key: Hashable, factory: Callable[[], C], *, per_thread: bool) -> C:
        """The client for ``key``, made by ``factory`` on first use."""
        if per_thread:
            cache = getattr(self._local, "cache", None)
            if cache is None:
                cache = self._local.cache = OrderedDict()
            return self._lookup(cache, key, factory)
        with self._lock:
            return self._lookup(self._shared, key, factory)

    def _lookup(
        self, cache: OrderedDict[Hashable, C], key: Hashable, factory: Callable[[], C]
    ) -> C:
        client = cache.get(key)
        if client is None:
            client = cache[key] = factory()
            while len(cache) > self.size:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return client


def text_or_none(value: object) -> str | None:
    """``str(value)``, or None for None and empty values."""
    return None if value is None or value == "" else str(value)


class FsspecStorage:
    """Shared behaviour of the fsspec-backed stores; subclasses implement :meth:`locate`."""

    #: Name used in messages, e.g. "S3".
    label = "object store"
    #: The extra of tes-filetransfer whose SDK this store needs; ``None``: the plain install.
    needs: Extra | None = None

    def __init__(self, chunk_concurrency: int = 8) -> None:
        self.chunk_concurrency = chunk_concurrency
        self.filesystems: FileSystems[AbstractFileSystem] = FileSystems()

    def locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        """The file system holding ``url`` and the object's path in it."""
        raise NotImplementedError

    # -- hooks subclasses may refine ------------------------------------------------

    def get_file(self, fs: AbstractFileSystem, path: str, dest: Path, callback: Callback) -> None:
        """Copy the object ``path`` into the local file ``dest``."""
        fs.get_file(path, str(dest), callback=callback)

    def put_file(self, fs: AbstractFileSystem, src: Path, path: str, callback: Callback) -> None:
        """Store the local file ``src`` as the object ``path`` (committed when complete)."""
        fs.put_file(str(src), path, callback=callback)

    # -- the Storage interface ----------------------------------------------------------

    def stat(self, url: str) -> RemoteFile:
        """Size, ETag and modification time of the object at ``url``."""
        safe = redact_url(url)
        try:
            fs, path = self.locate(url)
            info = fs.info(path)
        except Exception as exc:
            raise translate(exc, safe, upload=False, local=None) from None
        if info.get("type") == "directory":
            raise TransferError(f"{safe} is a folder: set the input's type to DIRECTORY")
        return _remote_file(url, info)

    def list_files(self, url: str) -> list[RemoteFile]:
        """Every object below the folder (prefix) ``url``, sorted by relative path."""
        safe = redact_url(url)
        try:
            fs, path = self.locate(url)
            path = path.rstrip("/")
            found = fs.find(path, detail=True)
        except Exception as exc:
            raise translate(exc, safe, upload=False, local=None) from None
        files = []
        for name, info in sorted(found.items()):
            rel = name[len(path):].lstrip("/") if name.startswith(path) else ""
            if not rel or info.get("type") == "directory" or name.endswith("/"):
                continue
            files.append(_remote_file(join_url(url, rel), info, rel))
        if not files:
            raise TransferError(f"nothing found under {safe}: check the input URL")
        return files

    def download(self, url: str, dest: Path) -> int:
        """Fetch the object at ``url`` into ``dest`` (temporary name, then rename)."""
        safe = redact_url(url)
        progress = Progress(f"download {safe} -> {dest}", announce=False)
        try:
            fs, path = self.locate(url)
            with atomic_target(dest) as tmp:
                progress.begin(None)
                self.get_file(fs, path, tmp, _ProgressCallback(progress))
                size = tmp.stat().st_size
        except Exception as exc:
            raise translate(exc, safe, upload=False, local=dest) from None
        progress.done(size)
        return size

    def download_dir(self, url: str, dest: Path) -> int:
        """Fetch every object below ``url`` into ``dest`` one by one; the file count."""
        files = self.list_files(url)
        for item in files:
            target = dest / item.relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            self.download(item.url, target)
        return len(files)

    def upload(self, src: Path, url: str) -> int:
        """Store ``src`` at ``url``; the object appears only once it is complete."""
        safe = redact_url(url)
        size = src.stat().st_size
        progress = Progress(f"upload {src} -> {safe}", size)
        try:
            fs, path = self.locate(url)
            self.put_file(fs, src, path, _ProgressCallback(progress))
        except Exception as exc:
            raise translate(exc, safe, upload=True, local=src) from None
        progress.done(size)
        return size


def _remote_file(url: str, info: dict[str, Any], relpath: str = "") -> RemoteFile:
    size = info.get("size")
    etag = info.get("etag") or info.get("ETag")
    modified = next((info[k] for k in _MODIFIED_KEYS if info.get(k)), None)
    return RemoteFile(
        url=url,
        size=int(size) if size is not None else None,
        etag=text_or_none(etag),
        modified=text_or_none(modified),
        relpath=relpath,
    )
