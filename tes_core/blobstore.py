"""What submitter hooks may do with the server's blob storage.

The server's blob storage, configured in the core (``TES_STORAGE_*``), is built by
whichever plugin implements ``tes_blob_storage`` (``tes-azure`` for Azure Blob
Storage). The core itself imports no storage SDK: it only passes the object on to
``tes_rewrite_url`` and ``tes_inject_inputs`` as ``storage``. It may hold several
accounts (tes-azure's :class:`tes_azure.accounts.StorageAccounts`); as a
:class:`BlobStore` it is the default one, so a plugin written for one account keeps
working.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from .config import ConfigError, Settings

STORAGE_SETTINGS = ("TES_STORAGE_CONNECTION_STRING", "TES_STORAGE_ACCOUNT_URL",
                    "TES_STORAGE_CONNECTION_STRING_<NAME>")
"""The variables that configure the server's blob storage accounts."""


@runtime_checkable
class BlobStore(Protocol):
    """One storage account, seen by submitter plugins. Its URLs carry SAS tokens: never
    log them."""

    account_name: str
    account_url: str

    def blob_url(self, container: str, blob: str) -> str:
        """The blob's URL, without a SAS."""
        ...

    def sas_url(self, container: str, blob: str, *, write: bool, lifetime: timedelta) -> str:
        """The blob's URL with a SAS valid for ``lifetime``; ``write`` for outputs."""
        ...

    def container_sas_url(self, container: str, *, write: bool, lifetime: timedelta) -> str:
        """The container's URL with a SAS that can list (and write, with ``write``)."""
        ...

    def folder_sas_url(
        self, container: str, prefix: str, *, write: bool, lifetime: timedelta
    ) -> str:
        """A folder's URL with a SAS valid for every blob under it."""
        ...

    def parse_url(self, url: str) -> tuple[str, str] | None:
        """``(container, blob)`` when ``url`` is on this account, else ``None``."""
        ...

    def parse_account_path(self, path: str) -> tuple[str, str] | None:
        """``(container, blob)`` for ``/<account>/<container>/<blob>`` naming this account."""
        ...

    def list_blobs(self, container: str, prefix: str) -> list[str]:
        """Names of the blobs in ``container`` starting with ``prefix`` (a network call)."""
        ...


def storage_configured(settings: Settings) -> str | None:
    """A ``TES_STORAGE_*`` variable that configures blob storage, or ``None``."""
    if settings.storage_connection_string:
        return STORAGE_SETTINGS[0]
    if settings.storage_account_url:
        return STORAGE_SETTINGS[1]
    return next(iter(settings.storage_connection_strings), None)


def no_provider_error(variable: str) -> ConfigError:
    """The start-up error when ``variable`` is set but no plugin builds the storage."""
    return ConfigError(
        f"{variable} is set but no installed plugin provides blob storage "
        "(the tes_blob_storage hook): pip install tes-azure"
    )


MAX_SAS_LIFETIME = timedelta(days=7)
"""The longest a SAS may live here: the most Azure allows a user-delegation SAS."""


def sas_lifetime(settings: Settings, name: str, default_hours: float) -> timedelta:
    """A plugin's SAS lifetime setting, in hours (``TES_<NAME>``), as a ``timedelta``.

    Raises :class:`ConfigError` naming the variable unless it is a number of hours
    above 0 and at most 168 (:data:`MAX_SAS_LIFETIME`).
    """
    raw = settings.plugin_setting(name, "")
    try:
        hours = float(raw) if raw.strip() else float(default_hours)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= MAX_SAS_LIFETIME.total_seconds() / 3600:
        raise ConfigError(
            f"TES_{name.upper()}={raw!r} is not a number of hours above 0 and at most 168"
        )
    return timedelta(hours=hours)
