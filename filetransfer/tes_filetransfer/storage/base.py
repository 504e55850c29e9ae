"""The interface every storage (one per URL scheme) implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class Storage(Protocol):
    """Moves files between one kind of URL and this machine.

    Implementations raise :class:`tes_filetransfer.TransferError` with a message naming the
    redacted URL and what to do; the caller adds which input or output it was.
    ``dest`` parent folders exist when ``download`` is called; a download must never leave
    a half-written ``dest`` (write a temporary file next to it, then rename).
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
