"""Which network endpoints a URL makes a storage connect to (what the access policy checks)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import TransferError
from ..urls import redact_url, url_scheme
from .azure_urls import FSSPEC_SCHEMES, parse_blob_url

_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}

# Stores whose URL names no host: the client reaches the provider's public endpoint,
# or one the operator configured (GCS's STORAGE_EMULATOR_HOST).
_NO_HOST_SCHEMES = frozenset({"gs", "gcs"})


def s3_endpoint() -> str | None:
    """The S3 endpoint override from the environment, if any."""
    for name in ("TES_FT_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise TransferError(f"{redact_url(url)} has an invalid port: fix the URL") from None
    return parts.hostname or "", port or _DEFAULT_PORTS.get(parts.scheme.lower())


def network_endpoints(url: str) -> list[tuple[str, int | None]]:
    """``(host, port)`` of every server ``url`` is fetched from or stored to.

    ``s3://`` reaches the configured endpoint (none: AWS itself); ``az://`` the account's
    blob endpoint; http(s), ftp and unknown schemes (plugins) the host in the URL.
    """
    scheme = url_scheme(url)
    if scheme in FSSPEC_SCHEMES:
        return [_host_port(parse_blob_url(url).account_url)]
    if scheme == "s3":
        endpoint = s3_endpoint()
        return [_host_port(endpoint)] if endpoint else []
    if scheme in _NO_HOST_SCHEMES:
        return []
    host, port = _host_port(url)
    if not host and scheme in _DEFAULT_PORTS:
        raise TransferError(f"{redact_url(url)} names no host: fix the URL")
    return [(host, port)] if host else []
