"""``gs://bucket/object`` through gcsfs.

Credentials: ``TES_FT_GCS_TOKEN`` (a service-account JSON file, ``anon`` or ``cloud``),
else Google's application default credentials. ``STORAGE_EMULATOR_HOST`` is honoured
by gcsfs itself. Uploads are resumable uploads, visible only once complete.

Deadlines (:mod:`.deadlines`): gcsfs would wait up to aiohttp's default 5 minutes for one
request and try each one 6 times, inside our own retries of the whole file, so a store
that stops answering could hold a transfer for hours. Each request here gets the same
connect and read deadlines as every other store, and :data:`LIBRARY_ATTEMPTS` tries.
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem

from ..errors import TransferError
from ..urls import redact_url
from .deadlines import CONNECT_TIMEOUT, LIBRARY_ATTEMPTS, READ_TIMEOUT
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
        return _bounded_filesystem_class()(
            token=token, skip_instance_cache=True, use_listings_cache=False,
            requests_timeout=_request_deadlines(),
        )


def _request_deadlines() -> Any:
    """aiohttp's deadlines for one request: to connect, and of silence while reading (no
    bound on the whole, so a large object may take as long as it keeps coming)."""
    from aiohttp import ClientTimeout

    return ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_connect=CONNECT_TIMEOUT,
                         sock_read=READ_TIMEOUT)


# The methods gcsfs wraps in its retry decorator (6 tries, fixed when the class is
# defined), wrapped again from the undecorated function with our count of tries: requests
# get LIBRARY_ATTEMPTS, and a download made of such requests one (it retried them).
_TRIES = {"_request": LIBRARY_ATTEMPTS, "_get_file_request": LIBRARY_ATTEMPTS,
          "_get_file_concurrent": 1}


@functools.cache
def _bounded_filesystem_class() -> type[AbstractFileSystem]:
    """``GCSFileSystem`` whose requests are tried :data:`LIBRARY_ATTEMPTS` times (see
    ``_TRIES``).

    The plain JSON-API file system of ``gcsfs.core``: what ``gcsfs`` exports by default
    now is an experimental subclass (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``) that first asks
    the Storage Control API about every bucket over gRPC, with retries of its own for up
    to a minute per call, around the same decorated methods."""
    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    bounded = {
        name: retry_request(retries=tries)(method.__wrapped__)
        for name, tries in _TRIES.items()
        if hasattr(method := getattr(GCSFileSystem, name, None), "__wrapped__")
    }
    return type("BoundedGCSFileSystem", (GCSFileSystem,), bounded)
