"""Azure Blob URLs and credentials, without the Azure SDK or fsspec (a light module).

What the storage router needs to send an ``http(s)://`` URL to Azure
(:func:`is_blob_url`), what the access policy needs to know the URL's endpoint
(:func:`parse_blob_url`), and where a blob's credentials come from
(:func:`credentials_for`). :mod:`.azure` moves the bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import TransferError
from ..urls import redact_url, url_scheme

BLOB_HOST_SUFFIX = ".blob.core.windows.net"
_DFS_HOST_SUFFIX = ".dfs.core.windows.net"
FSSPEC_SCHEMES = ("az", "abfs", "abfss")


@dataclass(frozen=True)
class BlobLocation:
    """Where a blob (or a folder prefix) lives, and the SAS that came with its URL."""

    account: str
    account_url: str
    container: str
    blob: str
    sas: str = ""


def _env(*names: str) -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return ""


def _connection_string() -> str:
    return _env("TES_FT_AZURE_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING")


def _parse_connection_string(text: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in text.split(";") if "=" in p)
    return {k.strip().lower(): v.strip() for k, v in parts}


def _connection_account_url(cs: dict[str, str]) -> str:
    """The blob endpoint a parsed connection string names."""
    if cs.get("blobendpoint"):
        return cs["blobendpoint"].rstrip("/")
    account = cs.get("accountname", "")
    protocol = cs.get("defaultendpointsprotocol", "https")
    suffix = cs.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.blob.{suffix}" if account else ""


def known_account_urls() -> list[str]:
    """Account URLs from ``TES_FT_AZURE_ACCOUNT_URLS`` and the connection string."""
    urls = [u.strip().rstrip("/") for u in _env("TES_FT_AZURE_ACCOUNT_URLS").split(",")]
    cs = _connection_string()
    if cs:
        urls.append(_connection_account_url(_parse_connection_string(cs)))
    return [u for u in urls if u]


def is_blob_url(url: str) -> bool:
    """True if the http(s) ``url`` addresses Azure Blob Storage (or an emulator)."""
    parts = urlsplit(url)
    if (parts.hostname or "").endswith(BLOB_HOST_SUFFIX):
        return True
    keys = {pair.split("=", 1)[0] for pair in parts.query.split("&")}
    if "sig" in keys and "sv" in keys and len(parts.path.strip("/").split("/")) >= 2:
        return True
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return any(base.startswith(account + "/") for account in known_account_urls())


def parse_blob_url(url: str) -> BlobLocation:
    """Split an Azure Blob URL of any accepted form into a :class:`BlobLocation`."""
    parts = urlsplit(url)
    scheme = url_scheme(url)
    path = unquote(parts.path).lstrip("/")
    if scheme in FSSPEC_SCHEMES:
        container, _, host = parts.netloc.partition("@")
        account = host.split(".", 1)[0] if host else ""
        if not account:
            account = _default_account()
        if not container or not account:
            raise TransferError(
                f"{redact_url(url)} names no storage account: use "
                f"{scheme}://<container>@<account>.blob.core.windows.net/<path> or set "
                "AZURE_STORAGE_ACCOUNT_NAME"
            )
        return BlobLocation(account, _account_url(account), container, path, parts.query)
    host = parts.hostname or ""
    if host.endswith(BLOB_HOST_SUFFIX) or host.endswith(_DFS_HOST_SUFFIX):
        account = host.split(".", 1)[0]
        account_url = f"{parts.scheme}://{account}{BLOB_HOST_SUFFIX}"
        container, _, blob = path.partition("/")
    else:  # path style: <scheme>://<host:port>/<account>/<container>/<blob>
        account, _, rest = path.partition("/")
        container, _, blob = rest.partition("/")
        account_url = f"{parts.scheme}://{parts.netloc}/{account}"
    if not container:
        raise TransferError(f"{redact_url(url)} names no container: check the URL")
    return BlobLocation(account, account_url, container, blob, parts.query)


def _default_account() -> str:
    account = _env("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT")
    if not account and _connection_string():
        account = _parse_connection_string(_connection_string()).get("accountname", "")
    return account


def _account_url(account: str) -> str:
    cs = _connection_string()
    if cs:
        parsed = _parse_connection_string(cs)
        if parsed.get("accountname") == account:
            return _connection_account_url(parsed)
    return f"https://{account}{BLOB_HOST_SUFFIX}"


def credentials_for(loc: BlobLocation) -> tuple[str, str]:
    """How to reach ``loc``: ``("connection_string", text)`` or ``("identity", account)``."""
    if loc.sas:
        sas = f"BlobEndpoint={loc.account_url};SharedAccessSignature={loc.sas}"
        return "connection_string", sas
    cs = _connection_string()
    if cs:
        parsed = _parse_connection_string(cs)
        if (
            parsed.get("accountname") == loc.account
            or _connection_account_url(parsed) == loc.account_url
        ):
            return "connection_string", cs
    key = _env("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY")
    if key:
        protocol = urlsplit(loc.account_url).scheme
        return "connection_string", (
            f"DefaultEndpointsProtocol={protocol};AccountName={loc.account};"
            f"AccountKey={key};BlobEndpoint={loc.account_url};"
        )
    if loc.account_url.endswith(BLOB_HOST_SUFFIX):
        return "identity", loc.account
    raise TransferError(
        f"no credentials for {loc.account_url}: put a SAS in the URL or set "
        "AZURE_STORAGE_CONNECTION_STRING"
    )
