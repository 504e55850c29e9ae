"""The interface every storage (one per kind of URL) implements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RemoteFile:
    """One stored object: its URL, size and version marks (what the cache checks).

    ``relpath`` is the object's path below the folder that was listed (``""`` for a
    single file). ``etag`` / ``modified`` are ``None`` when the store does not say.
    """

    url: str
    size: int | None
    etag: str | None = None
    modified: str | None = None
    relpath: str = ""

    @property
    def version(self) -> str | None:
        """What identifies this content: the ETag, else size and modification time."""
        if self.etag:
            return f"etag:{self.etag}"
        if self.size is not None and self.modified:
            return f"size:{self.size};modified:{self.modified}"
        if self.size is not None:
            return f"size:{self.size}"
        return None


@runtime_checkable
class Storage(Protocol):
    """Moves files between one kind of URL and this machine.

    Implementations raise :class:`tes_filetransfer.TransferError` with a message naming the
    redacted URL and what to do (:class:`tes_filetransfer.errors.TransientError` for what is
    worth another try); the caller adds which input or output it was. ``dest`` parent
    folders exist when ``download`` is called; a download must never leave a half-written
    ``dest`` (write a temporary file next to it, then rename).

    Optional methods a storage may add (found by name):

    * ``stat(url) -> RemoteFile``: size and ETag of one object; lets the node-local cache
      reuse a download.
    * ``list_files(url) -> list[RemoteFile]``: every object below a folder URL; lets
      DIRECTORY inputs go through the parallel pool and the cache instead of
      ``download_dir``.
    """

    def download(self, url: str, dest: Path) -> int:
        """Fetch the single file at ``url`` into ``dest``; return its size in bytes."""
        ...

    def download_dir(self, url: str, dest: Path) -> int:
        """Fetch every file under ``url`` into the folder ``dest``; return the file count.

        Stores that cannot list raise TransferError saying directory inputs are not supported.
        """
        ...

    def upload(self, src: Path, url: str) -> int:
        """Store the local file ``src`` at ``url``; return its size in bytes."""
        ...
