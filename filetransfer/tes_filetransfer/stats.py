"""Counters of what one staging or upload run moved (thread-safe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class TransferStats:
    """Bytes and files moved by one :func:`stage_inputs` / :func:`upload_outputs` call."""

    downloaded_bytes: int = 0
    """Bytes fetched from storage (cache misses and uncached downloads)."""
    cached_bytes: int = 0
    """Bytes placed from the node-local cache without a download."""
    uploaded_bytes: int = 0
    files: int = 0
    expected_files: int = 0
    """Files the calls so far set out to move, known once each has planned its work (for
    progress: ``files`` of ``expected_files``)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def summary(self) -> str:
        """One line for a task's logs, e.g. ``3 files: 1024 bytes downloaded, 2048 bytes from
        the node cache, 0 bytes uploaded`` (a second task with the same inputs shows
        0 bytes downloaded)."""
        return (
            f"{self.files} files: {self.downloaded_bytes} bytes downloaded, "
            f"{self.cached_bytes} bytes from the node cache, {self.uploaded_bytes} bytes uploaded"
        )

    def expect(self, files: int) -> None:
        """Count ``files`` more files to move."""
        with self._lock:
            self.expected_files += files

    def add(self, *, downloaded: int = 0, cached: int = 0, uploaded: int = 0) -> None:
        """Count one file and its bytes."""
        with self._lock:
            self.downloaded_bytes += downloaded
            self.cached_bytes += cached
            self.uploaded_bytes += uploaded
            self.files += 1
