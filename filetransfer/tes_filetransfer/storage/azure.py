"""Azure Blob Storage through adlfs (fsspec), with a SAS, a key or managed identity.

URLs handled:

* ``https://<account>.blob.core.windows.net/<container>/<blob>[?<SAS>]``
* path-style account URLs such as Azurite's
  ``http://127.0.0.1:10000/<account>/<container>/<blob>[?<SAS>]``: recognised by a SAS in
  the query (``sv`` and ``sig``), or by starting with an account URL named in
  ``TES_FT_AZURE_ACCOUNT_URLS`` or in the connection string's ``BlobEndpoint``;
* ``az://<container>/<blob>``, ``az://<container>@<account>.blob.core.windows.net/<blob>``,
  ``abfs[s]://<container>@<account>.dfs.core.windows.net/<blob>`` (account from the URL,
  else ``AZURE_STORAGE_ACCOUNT_NAME`` or the connection string).

Credentials, first found wins: the SAS in the URL; a connection string
(``TES_FT_AZURE_CONNECTION_STRING``, else ``AZURE_STORAGE_CONNECTION_STRING``) for the same
account; an account key (``AZURE_STORAGE_ACCOUNT_KEY`` / ``AZURE_STORAGE_KEY``) with the
account; azure-identity's ``DefaultAzureCredential`` (managed identity, environment,
Azure CLI) for ``*.blob.core.windows.net`` accounts.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec import AbstractFileSystem

from ..errors import TransferError
from ..fsutil import atomic_target
from ..policy import NetworkPolicy, current_policy
from ..progress import Progress
from ..urls import redact_url
from .azure_urls import credentials_for, parse_blob_url
from .base import RemoteFile
from .deadlines import CONNECT_TIMEOUT, READ_TIMEOUT
from .errors import translate
from .extras import AZURE
from .fsspec_store import FileSystems, FsspecStorage, text_or_none
from .netguard import guarded_session

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient, ExponentialRetry

#: Largest blob moved in one request; bigger ones go in ranges / blocks of the SDK's 4 MiB,
#: ``chunk_concurrency`` at a time. The SDK's defaults (32 MiB down, 64 MiB up) hold that
#: much per file in memory (twice, while a body is joined): 4 MiB took the peak RSS of a
#: 1 GiB download from about 153 to 125 MiB at the same speed, and keeps
#: ``parallel`` medium-sized files from holding hundreds of MiB.
SINGLE_REQUEST_BYTES = 4 * 1024 * 1024


class AzureBlobStorage(FsspecStorage):
    """Azure Blob Storage: listing through adlfs (fsspec); stat, downloads and uploads
    through the azure-storage-blob SDK's synchronous client.

    Why the SDK for single blobs: adlfs runs every call on fsspec's one event-loop
    thread, and on this project's benchmark (bench/bench_transfer.py, 1000 x 100 KB on
    Azurite) that reached only about half the SDK's own throughput; the SDK's sync
    client with a thread per file and ``max_concurrency`` blocks per large blob is the
    baseline itself. Uploads are block blobs committed at the end: a failed upload
    leaves no blob behind.

    The SDK retries each request (one block or range of a large blob) itself, ``attempts``
    tries in all, waiting ``backoff``, ``2*backoff``, ... seconds (with 20% jitter), instead
    of its default of about 15 s and then 24 s: a dropped connection should cost a
    moment, not a minute, and the caller's own retry of the whole file comes on top.
    """

    label = "Azure Blob"
    needs = AZURE

    def __init__(
        self, chunk_concurrency: int = 8, *, attempts: int = 4, backoff: float = 0.5
    ) -> None:
        super().__init__(chunk_concurrency)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._clients: FileSystems[BlobServiceClient] = FileSystems()
        self._moving = 0
        self._moving_lock = threading.Lock()

    @contextlib.contextmanager
    def _chunk_share(self) -> Iterator[int]:
        """This file's share of ``chunk_concurrency``: files moving at once split it.

        Every chunk in flight holds up to twice the SDK's 4 MiB chunk in memory, so
        ``parallel`` big files each with all ``chunk_concurrency`` chunks would not stay
        bounded (8 x 48 MiB downloads peaked at 492 MiB); a file moving alone gets them all.
        """
        with self._moving_lock:
            self._moving += 1
            share = max(1, self.chunk_concurrency // self._moving)
        try:
            yield share
        finally:
            with self._moving_lock:
                self._moving -= 1

    def locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        """adlfs file system for the URL's account and credentials; ``container/blob``."""
        loc = parse_blob_url(url)
        kind, value = credentials_for(loc)
        fs = self.filesystems.get((kind, value), lambda: self._make(kind, value), per_thread=False)
        return fs, f"{loc.container}/{loc.blob}" if loc.blob else loc.container

    def _make(self, kind: str, value: str) -> AbstractFileSystem:
        from adlfs import AzureBlobFileSystem

        options = {
            "max_concurrency": self.chunk_concurrency,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "connection_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT,
        }
        if kind == "connection_string":
            fs = AzureBlobFileSystem(connection_string=value, **options)
        else:
            fs = AzureBlobFileSystem(account_name=value, anon=False, **options)
        # adlfs builds its client with the SDK's default retries (15, 18, 24 s waits):
        # the same client with ours instead.
        fs.service_client = _bounded_aio_client(fs, self.attempts, self.backoff)
        return fs

    def _blob(self, url: str) -> BlobClient:
        """The SDK's BlobClient for ``url`` (service clients shared per credentials)."""
        loc = parse_blob_url(url)
        if not loc.blob:
            raise TransferError(f"{redact_url(url)} names no blob: check the URL")
        kind, value = credentials_for(loc)
        network = current_policy().network

        def make() -> BlobServiceClient:
            from azure.storage.blob import BlobServiceClient

            options = {
                "retry_policy": _retry_policy(self.attempts, self.backoff),
                "max_single_get_size": SINGLE_REQUEST_BYTES,
                "max_single_put_size": SINGLE_REQUEST_BYTES,
                "transport": _guarded_transport(network),
                "connection_timeout": CONNECT_TIMEOUT,
                "read_timeout": READ_TIMEOUT,
            }
            if kind == "connection_string":
                return BlobServiceClient.from_connection_string(value, **options)
            from azure.identity import DefaultAzureCredential

            return BlobServiceClient(
                loc.account_url, credential=DefaultAzureCredential(), **options
            )

        service = self._clients.get((kind, value, network), make, per_thread=False)
        return service.get_blob_client(loc.container, loc.blob)

    def stat(self, url: str) -> RemoteFile:
        """Size, ETag and last-modified time of the blob (one HEAD request)."""
        safe = redact_url(url)
        try:
            props = self._blob(url).get_blob_properties()
        except Exception as exc:
            raise translate(exc, safe, upload=False, local=None) from None
        return RemoteFile(url=url, size=int(props.size), etag=text_or_none(props.etag),
                          modified=text_or_none(props.last_modified))

    def download(self, url: str, dest: Path) -> int:
        """Fetch the blob into ``dest`` (temporary name, then rename), big ones in parallel
        ranged reads."""
        safe = redact_url(url)
        progress = Progress(f"download {safe} -> {dest}", announce=False)
        try:
            blob = self._blob(url)
            with self._chunk_share() as chunks, atomic_target(dest) as tmp, \
                    open(tmp, "xb") as out:
                progress.begin(None)
                stream = blob.download_blob(
                    max_concurrency=chunks,
                    progress_hook=_hook(progress),
                )
                size = stream.readinto(out)
        except Exception as exc:
            raise translate(exc, safe, upload=False, local=dest) from None
        progress.done(size)
        return size

    def upload(self, src: Path, url: str) -> int:
        """Store ``src`` as a block blob, in parallel blocks committed at the end."""
        safe = redact_url(url)
        size = src.stat().st_size
        progress = Progress(f"upload {src} -> {safe}", size)
        try:
            blob = self._blob(url)
            with self._chunk_share() as chunks, open(src, "rb") as data:
                blob.upload_blob(
                    data, length=size, overwrite=True,
                    max_concurrency=chunks, progress_hook=_hook(progress),
                )
        except Exception as exc:
            raise translate(exc, safe, upload=True, local=src) from None
        progress.done(size)
        return size


def _bounded_aio_client(fs: AbstractFileSystem, attempts: int, backoff: float) -> Any:
    """adlfs' asynchronous service client, made again with our retries and deadlines."""
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    options = {
        "retry_policy": ExponentialRetry(
            initial_backoff=backoff, increment_base=2, retry_total=attempts - 1,
            random_jitter_range=0,
        ),
        "connection_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    }
    if fs.connection_string:
        return BlobServiceClient.from_connection_string(fs.connection_string, **options)
    return BlobServiceClient(fs.account_url, credential=fs.credential, **options)


def _guarded_transport(network: NetworkPolicy) -> Any:
    """The SDK's requests transport on a session whose connections ``network`` checks
    (the SDK's own parallel chunk threads included: the policy is bound, not looked up)."""
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    try:  # what the SDK mounts on its own sessions (larger read blocks)
        from azure.core.pipeline.transport._requests_basic import (
            BiggerBlockSizeHTTPAdapter as adapter,
        )
    except ImportError:
        adapter = HTTPAdapter
    no_retries = Retry(total=False, redirect=False, raise_on_status=False)
    session = guarded_session(network, adapter, max_retries=no_retries)
    # The deadlines go here: a client given a transport passes its own
    # connection_timeout/read_timeout options to none it did not make (azure-core's
    # RequestsTransport then waits 300 s to connect and 300 s of silence).
    return RequestsTransport(session=session, session_owner=False,
                             connection_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)


def _retry_policy(attempts: int, backoff: float) -> ExponentialRetry:
    """The SDK's ExponentialRetry, ``attempts`` tries, waiting ``backoff * 2**n`` s (+-20%)
    before try n+2."""
    retries = attempts - 1
    return _retry_class()(
        backoff, retry_total=retries, retry_connect=retries, retry_read=retries,
        retry_status=retries, random_jitter_range=0,
    )


@functools.cache
def _retry_class() -> type[ExponentialRetry]:
    """The retry policy class, made on first use (importing the SDK is slow)."""
    from azure.storage.blob import ExponentialRetry

    class _Retry(ExponentialRetry):  # type: ignore[misc]
        def __init__(self, backoff: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.first_wait = backoff

        def get_backoff_time(self, settings: dict[str, Any]) -> float:
            # settings["count"] is 1 before the first retry.
            return self.first_wait * 2 ** (settings["count"] - 1) * random.uniform(0.8, 1.2)

    return _Retry


def _hook(progress: Progress) -> Callable[[int, int | None], None]:
    """An SDK ``progress_hook`` (bytes so far, total) feeding ``progress``."""
    seen = [0]

    def hook(current: int, total: int | None) -> None:
        if current > seen[0]:
            progress.update(current - seen[0])
            seen[0] = current

    return hook
