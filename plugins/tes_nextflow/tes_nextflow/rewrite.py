"""Turning a Nextflow task's Azure URLs into blob URLs with a SAS the backend can use.

Inputs get read SAS, outputs write SAS. A file gets a SAS for its blob alone; a folder
(``DIRECTORY`` inputs and outputs, wildcard outputs with ``path_prefix``) gets a
container SAS on the folder's URL, since its files are reached by appending their
names to that URL. Each is signed by the storage account it names (the server may sign
for several: see :mod:`tes_azure.accounts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tes_azure.accounts import StorageAccounts
from tes_core import blobstore
from tes_core.config import ConfigError
from tes_core.errors import ApiError, SubmitterError

from .urls import BlobLocation, UrlFormError, blob_location

if TYPE_CHECKING:
    from tes_core.blobstore import BlobStore
    from tes_core.config import Settings

SAS_LIFETIME_SETTING = "nextflow_sas_lifetime_hours"
DEFAULT_SAS_LIFETIME_HOURS = 48.0
_WILDCARDS = frozenset("*?[")


_parsed: tuple[Settings, timedelta] | None = None
"""The last settings object read and its lifetime: read once per process, not per URL."""


def sas_lifetime(settings: Settings) -> timedelta:
    """``TES_NEXTFLOW_SAS_LIFETIME_HOURS`` (default 48) as a duration; a bad value is the
    server's fault, so it fails the request with a 500 that names the variable."""
    global _parsed
    parsed = _parsed
    if parsed is not None and parsed[0] is settings:
        return parsed[1]
    try:
        lifetime = blobstore.sas_lifetime(settings, SAS_LIFETIME_SETTING,
                                          DEFAULT_SAS_LIFETIME_HOURS)
    except ConfigError as exc:
        raise ApiError(f"the server's settings are wrong: {exc}") from None
    _parsed = (settings, lifetime)
    return lifetime


def rewrite_url(
    url: str,
    direction: str,
    task: Mapping[str, Any],
    form: str,
    settings: Settings,
    storage: BlobStore | None,
) -> str | None:
    """The SAS URL for one of a Nextflow task's URLs, or ``None`` to leave it as it is.

    The account is the one the URL names (``az://<account>/...``, ``/<account>/...``), or
    the server's default account for ``az://<container>/...``.

    :raises SubmitterError: the URL is in an Azure form but the server has no storage,
        or names an account the server cannot sign for, or names no container.
    """
    accounts = StorageAccounts.of(storage)
    try:
        location = blob_location(url, form, accounts.names if accounts else ())
    except UrlFormError as exc:
        raise SubmitterError(str(exc)) from None
    if location is None:
        return None
    if accounts is None:
        raise SubmitterError(
            f"{url} is in Azure Blob storage, and this server has no storage to reach it: set "
            "TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL"
            + (f" to the account {location.account!r}" if location.account else "")
        )
    account = _account(url, location, accounts)
    write = direction == "output"
    lifetime = sas_lifetime(settings)
    if _is_folder(url, direction, task):
        return account.folder_sas_url(location.container, location.blob, write=write,
                                      lifetime=lifetime)
    if not location.blob:
        raise SubmitterError(f"{url} names a container, not a file")
    return account.sas_url(location.container, location.blob, write=write, lifetime=lifetime)


def _account(url: str, location: BlobLocation, accounts: StorageAccounts) -> BlobStore:
    """The account that signs for ``location``: the one it names, else the default."""
    if location.account is None:
        return accounts.default
    account = accounts.account(location.account)
    if account is not None:
        return account
    raise SubmitterError(
        f"{url} is in {accounts.refusal(location.account)}; or run Nextflow with "
        f"azure.storage.accountName = '{accounts.default.account_name}'"
    )


def _is_folder(url: str, direction: str, task: Mapping[str, Any]) -> bool:
    """Whether some input (output) with this URL is a folder or a wildcard output.

    The URLs are compared as they are now: the task service writes each rewritten URL
    back before asking about the next, so an item already rewritten no longer counts."""
    items = task.get("inputs" if direction == "input" else "outputs") or ()
    if len(items) > _SCAN_LIMIT:
        items = _folder_items(items, direction)
    for item in items:
        if item.get("url") != url:
            continue
        if _folder_like(item, direction):
            return True
    return False


_SCAN_LIMIT = 16
"""Up to this many items, scanning them all for each URL is cheaper than looking up the
folder items; beyond, it grows with the square of the task's URLs."""

_folders: tuple[Any, str, int, list[Mapping[str, Any]]] | None = None
"""The items last asked about (a task's inputs or outputs), the direction, their count
and which of them are folders."""


def _folder_items(items: Any, direction: str) -> list[Mapping[str, Any]]:
    """Which of ``items`` (a task's inputs or outputs) are folders or wildcard outputs.

    Every URL of a task asks, so they are picked out once per task and direction, not
    once per URL; only the URLs change meanwhile, never an item's type or path."""
    global _folders
    cached = _folders
    if (cached is None or cached[0] is not items or cached[1] != direction
            or cached[2] != len(items)):
        cached = _folders = (items, direction, len(items),
                             [item for item in items if _folder_like(item, direction)])
    return cached[3]


def _folder_like(item: Mapping[str, Any], direction: str) -> bool:
    """A DIRECTORY item, one with a ``path_prefix``, or an output whose path has a
    wildcard: its files are reached by appending their names to its URL."""
    if item.get("type") == "DIRECTORY" or item.get("path_prefix"):
        return True
    return direction == "output" and bool(_WILDCARDS.intersection(item.get("path") or ""))
