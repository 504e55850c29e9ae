"""``gs://bucket/object`` through gcsfs.

Credentials: ``TES_FT_GCS_TOKEN`` (a service-account JSON file, ``anon`` or ``cloud``),
else Google's application default credentials. ``STORAGE_EMULATOR_HOST`` is honoured
by gcsfs itself. Uploads are resumable uploads, visible only once complete.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem

from ..errors import TransferError
from ..urls import redact_url
from .extras import GCS
from .fsspec_store import FsspecStorage


class GcsStorage(FsspecStorage):
    """Google Cloud Storage on gcsfs."""

    label = "GCS"
    needs = GCS

    def locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        """The gcsfs file system and ``bucket/object``."""
        parts = urlsplit(url)
        if not parts.netloc:
            raise TransferError(f"{redact_url(url)} names no bucket: use gs://bucket/object")
        token = os.environ.get("TES_FT_GCS_TOKEN", "").strip() or None
        fs = self.filesystems.get(("gcs", token), lambda: self._make(token), per_thread=False)
        return fs, f"{parts.netloc}{unquote(parts.path)}"

    def _make(self, token: str | None) -> AbstractFileSystem:
        from gcsfs import GCSFileSystem

        return GCSFileSystem(token=token, skip_instance_cache=True, use_listings_cache=False)
