"""``s3://bucket/key`` through s3fs, with an endpoint override for S3-compatible stores.

Credentials come the usual boto way (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
profiles, instance roles). ``TES_FT_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL``) points at another S3 service such as MinIO or moto_server.
Large files go up as multipart uploads, completed (made visible) only at the end.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem

from ..errors import TransferError
from ..policy import NetworkPolicy, current_policy
from ..urls import redact_url
from .deadlines import CONNECT_TIMEOUT, LIBRARY_ATTEMPTS, READ_TIMEOUT
from .endpoints import s3_endpoint
from .extras import S3
from .fsspec_store import FsspecStorage
from .netguard import guarded_resolver


class S3Storage(FsspecStorage):
    """Amazon S3 and S3-compatible stores on s3fs."""

    label = "S3"
    needs = S3

    def locate(self, url: str) -> tuple[AbstractFileSystem, str]:
        """The s3fs file system (per endpoint) and ``bucket/key``."""
        parts = urlsplit(url)
        if not parts.netloc:
            raise TransferError(f"{redact_url(url)} names no bucket: use s3://bucket/key")
        endpoint = s3_endpoint()
        network = current_policy().network
        fs = self.filesystems.get(
            ("s3", endpoint, network), lambda: self._make(endpoint, network), per_thread=False
        )
        return fs, f"{parts.netloc}{unquote(parts.path)}"

    def _make(self, endpoint: str | None, network: NetworkPolicy) -> AbstractFileSystem:
        from s3fs import S3FileSystem

        client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
        fs = S3FileSystem(
            client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False,
            max_concurrency=self.chunk_concurrency,
            config_kwargs={
                # every connection's addresses checked by the access policy
                "connector_args": {"resolver": guarded_resolver(network)},
                "connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
                "retries": {"total_max_attempts": LIBRARY_ATTEMPTS, "mode": "standard"},
            },
        )
        fs.retries = LIBRARY_ATTEMPTS  # s3fs' own tries around botocore's (default 5)
        return fs
