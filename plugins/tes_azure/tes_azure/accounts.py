"""The storage accounts the server signs for, and which one a URL or path names.

The server signs for every account its settings name, in this order (the first is the
default, for URL forms that name no account, such as Cromwell's local roots and
Nextflow's ``az://<container>/...``):

1. ``TES_STORAGE_CONNECTION_STRING``;
2. each URL of ``TES_STORAGE_ACCOUNT_URL`` (comma-separated; managed identity);
3. each ``TES_STORAGE_CONNECTION_STRING_<NAME>``, by variable name.

An account named twice is a start-up error, except today's pair: an account in both
``TES_STORAGE_CONNECTION_STRING`` and ``TES_STORAGE_ACCOUNT_URL`` is signed with the
connection string, as it always was.

The account a URL names is the host's first label for ``https://<account>.blob.<suffix>``
and the first path segment for path-style (emulator) URLs such as Azurite's
``http://127.0.0.1:10000/<account>/...``. :class:`StorageAccounts` has the members of
:class:`tes_core.blobstore.BlobStore`, answered by the default account, so submitter
plugins written for one account keep working.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote, urlsplit

from tes_core.blobstore import STORAGE_SETTINGS, BlobStore
from tes_core.config import ConfigError, Settings

from .blobstorage import BlobStorage

log = logging.getLogger(__name__)

ADD_ACCOUNT = (f"add its connection string as {STORAGE_SETTINGS[2]} or its URL to "
               f"{STORAGE_SETTINGS[1]}")
"""What to do about an account the server cannot sign for."""

_AZURE_HOST = re.compile(r"^(?P<account>[a-z0-9]+)\.blob\.", re.IGNORECASE)


@dataclass(frozen=True)
class Blob:
    """A blob (``""``: the container; a prefix for folders) in one of the accounts."""

    account: BlobStore
    container: str
    blob: str


@dataclass(frozen=True)
class NamedAccount:
    """The account an http(s) URL names, and the account URL (endpoint) it names it at."""

    name: str
    endpoint: str
    azure_host: bool
    """Whether the URL is on a ``<account>.blob.<suffix>`` host (Azure's own form)."""


class StorageAccounts:
    """The storage accounts the server signs for; the first is the default.

    Never log what it returns: its URLs carry SAS tokens.
    """

    def __init__(self, accounts: Sequence[BlobStore]) -> None:
        if not accounts:
            raise ValueError("StorageAccounts needs at least one account")
        self.accounts: tuple[BlobStore, ...] = tuple(accounts)
        self._by_name = {account.account_name: account for account in self.accounts}

    def __repr__(self) -> str:
        return f"StorageAccounts({', '.join(repr(a) for a in self.accounts)})"

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageAccounts | None:
        """The accounts ``settings`` configure, or ``None`` when no storage setting is set.

        Raises :class:`ConfigError` naming the variable when a value cannot be used or an
        account is configured twice.
        """
        found: list[BlobStorage] = []
        if settings.storage_connection_string:
            found.append(BlobStorage.from_connection_string(settings.storage_connection_string))
        for url in settings.storage_account_url.split(","):
            if url.strip():
                found.append(BlobStorage.from_account_url(url.strip()))
        for variable, value in sorted(settings.storage_connection_strings.items()):
            found.append(BlobStorage.from_connection_string(value, variable))
        if not found:
            return None
        return cls(_without_duplicates(found))

    @classmethod
    def of(cls, storage: BlobStore | None) -> StorageAccounts | None:
        """``storage`` as accounts: itself, or one plain :class:`BlobStore` wrapped."""
        if storage is None or isinstance(storage, StorageAccounts):
            return storage
        return cls([storage])

    # -- choosing an account --------------------------------------------------

    @property
    def default(self) -> BlobStore:
        """The account for URL forms that name none."""
        return self.accounts[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The accounts' names, the default first."""
        return tuple(self._by_name)

    def account(self, name: str) -> BlobStore | None:
        """The account called ``name``, or ``None``."""
        return self._by_name.get(name)

    def find_url(self, url: str) -> Blob | None:
        """The account whose URL ``url`` is (at its configured endpoint), with the
        container and blob; ``None`` when it is on none of them."""
        for account in self.accounts:
            found = account.parse_url(url)
            if found is not None:
                return Blob(account, *found)
        return None

    def find_account_path(self, path: str) -> Blob | None:
        """``/<account>/<container>/<blob>`` naming one of the accounts, else ``None``."""
        account = self.account(path[1:].partition("/")[0]) if path.startswith("/") else None
        found = account.parse_account_path(path) if account is not None else None
        return Blob(account, *found) if account is not None and found is not None else None

    def named_by(self, url: str) -> NamedAccount | None:
        """The account an http(s) ``url`` names, wherever it is: the host's first label on
        ``<account>.blob.<suffix>``; the first path segment on an IP address,
        ``localhost``, or the host and port of a configured account (emulators).
        ``None`` for any other URL."""
        parts = urlsplit(url)
        scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
        if scheme not in ("http", "https") or not netloc:
            return None
        match = _AZURE_HOST.match(parts.hostname or "")
        if match:
            return NamedAccount(match["account"].lower(), f"{scheme}://{netloc}", True)
        if not _path_style_host(parts.hostname or "", netloc, self.accounts):
            return None
        segment = unquote(parts.path.lstrip("/").partition("/")[0])
        if not segment:
            return None
        return NamedAccount(segment, f"{scheme}://{netloc}/{segment}", False)

    def elsewhere(self, url: str) -> NamedAccount | None:
        """What ``url`` names when it is one of these accounts' names at another endpoint
        (an emulator's address for an account configured on Azure, or the reverse)."""
        named = self.named_by(url)
        known = self.account(named.name) if named is not None else None
        if named is None or known is None:
            return None
        return None if named.endpoint.lower() == known.account_url.lower() else named

    # -- messages -------------------------------------------------------------

    def refusal(self, name: str, endpoint: str | None = None) -> str:
        """Why a URL naming account ``name`` (at ``endpoint``, if the URL says one) cannot
        be signed, and what to do; to follow "<the URL> is in ". Names no secret."""
        known = self.account(name)
        if known is not None and endpoint is not None:
            return (
                f"storage account {name!r} at {endpoint}, but this server's account {name!r} "
                f"is at {known.account_url} ({_setting(known)}): write the URL at "
                f"{known.account_url}, or point {_setting(known)} at {endpoint}"
            )
        return (
            f"storage account {name!r}, which this server cannot sign for (it signs for "
            f"{self.describe()}): {ADD_ACCOUNT}"
        )

    def describe(self) -> str:
        """The accounts and the variables that configure them, for messages."""
        return ", ".join(f"{a.account_name!r} ({_setting(a)})" for a in self.accounts)

    # -- BlobStore, answered by the default account ---------------------------

    @property
    def account_name(self) -> str:
        """The default account's name."""
        return self.default.account_name

    @property
    def account_url(self) -> str:
        """The default account's URL."""
        return self.default.account_url

    def blob_url(self, container: str, blob: str) -> str:
        """A blob's URL in the default account, without a SAS."""
        return self.default.blob_url(container, blob)

    def sas_url(self, container: str, blob: str, *, write: bool, lifetime: timedelta) -> str:
        """A blob's URL in the default account, with a SAS."""
        return self.default.sas_url(container, blob, write=write, lifetime=lifetime)

    def container_sas_url(self, container: str, *, write: bool, lifetime: timedelta) -> str:
        """A container's URL in the default account, with a SAS."""
        return self.default.container_sas_url(container, write=write, lifetime=lifetime)

    def folder_sas_url(
        self, container: str, prefix: str, *, write: bool, lifetime: timedelta
    ) -> str:
        """A folder's URL in the default account, with a container SAS."""
        return self.default.folder_sas_url(container, prefix, write=write, lifetime=lifetime)

    def parse_url(self, url: str) -> tuple[str, str] | None:
        """``(container, blob)`` when ``url`` is on the default account."""
        return self.default.parse_url(url)

    def parse_account_path(self, path: str) -> tuple[str, str] | None:
        """``(container, blob)`` for ``/<default account>/<container>/<blob>``."""
        return self.default.parse_account_path(path)

    def list_blobs(self, container: str, prefix: str) -> list[str]:
        """Names of the blobs under ``prefix`` in the default account's ``container``."""
        return self.default.list_blobs(container, prefix)


def _setting(account: BlobStore) -> str:
    return str(getattr(account, "setting", "") or "the server's storage settings")


def _path_style_host(host: str, netloc: str, accounts: Sequence[BlobStore]) -> bool:
    """Whether URLs on ``host`` put the account in the path: an IP address, ``localhost``,
    or where a configured account is."""
    if host == "localhost" or any(
        urlsplit(a.account_url).netloc.lower() == netloc for a in accounts
    ):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _without_duplicates(found: list[BlobStorage]) -> list[BlobStorage]:
    """``found`` with each account once; an account configured twice is an error, except in
    both ``TES_STORAGE_CONNECTION_STRING`` and ``TES_STORAGE_ACCOUNT_URL`` (the connection
    string signs, as before several accounts)."""
    kept: dict[str, BlobStorage] = {}
    for account in found:
        first = kept.get(account.account_name)
        if first is None:
            kept[account.account_name] = account
        elif (first.setting, account.setting) == STORAGE_SETTINGS[:2]:
            log.info("storage account %r is in %s and %s: signing with the connection string",
                     account.account_name, *STORAGE_SETTINGS[:2])
        else:
            raise ConfigError(
                f"storage account {account.account_name!r} is configured twice, by "
                f"{first.setting} and {account.setting}: keep one of them"
            )
    return list(kept.values())
