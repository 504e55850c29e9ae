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
from tes_azure.blobstorage import TaskSigners
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


def sas_lifetime(settings: Settings) -> timedelta:
    """``TES_NEXTFLOW_SAS_LIFETIME_HOURS`` (default 48) as a duration; a bad value is the
    server's fault, so it fails the request with a 500 that names the variable."""
    try:
        return blobstore.sas_lifetime(settings, SAS_LIFETIME_SETTING, DEFAULT_SAS_LIFETIME_HOURS)
    except ConfigError as exc:
        raise ApiError(f"the server's settings are wrong: {exc}") from None


class TaskRewriter:
    """``rewrite(url, direction)`` for the URLs of one Nextflow task (``tes_url_rewriter``):
    what is the same for every URL of the task (its accounts, the SAS lifetime, which of
    its items are folders) is found once, not once per URL.

    Called with a URL, it answers the SAS URL for it, or ``None`` to leave it as it is.
    The account is the one the URL names (``az://<account>/...``, ``/<account>/...``), or
    the server's default account for ``az://<container>/...``. It raises
    :class:`SubmitterError` when the URL is in an Azure form but the server has no
    storage, or names an account the server cannot sign for, or names no container.
    """

    def __init__(
        self, task: Mapping[str, Any], form: str, settings: Settings, storage: BlobStore | None
    ) -> None:
        self._task = task
        self._form = form
        self._settings = settings
        self._accounts = StorageAccounts.of(storage)
        self._names = self._accounts.names if self._accounts else ()
        self._lifetime: timedelta | None = None
        self._folders: dict[str, dict[Any, list[Mapping[str, Any]]]] = {}
        self._signers = TaskSigners()

    def __call__(self, url: str, direction: str) -> str | None:
        """The SAS URL for ``url`` (an ``"input"`` or ``"output"``), or ``None``."""
        found = self._target(url, direction)
        if found is None:
            return None
        location, account, folder = found
        write = direction == "output"
        lifetime = self._lifetime
        assert lifetime is not None
        if folder:
            return account.folder_sas_url(location.container, location.blob, write=write,
                                          lifetime=lifetime)
        return self._signers.sas_url(account, location.container, location.blob, write=write,
                                     lifetime=lifetime)

    def check(self, url: str, direction: str) -> bool:
        """Whether this rewriter signs ``url``; raises as :meth:`__call__` does for a URL it
        could never sign. With it, the core signs when a backend gets the task, not at
        create (see :mod:`tes_core.task_urls`)."""
        return self._target(url, direction) is not None

    def _target(self, url: str, direction: str) -> tuple[BlobLocation, BlobStore, bool] | None:
        """The blob ``url`` names, the account that signs for it and whether it is a
        folder; ``None`` for a URL that is not in an Azure form."""
        try:
            location = blob_location(url, self._form, self._names)
        except UrlFormError as exc:
            raise SubmitterError(str(exc)) from None
        if location is None:
            return None
        accounts = self._accounts
        if accounts is None:
            raise SubmitterError(
                f"{url} is in Azure Blob storage, and this server has no storage to reach it: "
                "set TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL"
                + (f" to the account {location.account!r}" if location.account else "")
            )
        account = _account(url, location, accounts)
        if self._lifetime is None:
            self._lifetime = sas_lifetime(self._settings)
        folder = self._is_folder(url, direction)
        if not folder and not location.blob:
            raise SubmitterError(f"{url} names a container, not a file")
        return location, account, folder

    def _is_folder(self, url: str, direction: str) -> bool:
        """Whether some input (output) with this URL is a folder or a wildcard output.

        The URLs are compared as they are now: the task service writes each rewritten URL
        back before asking about the next, so an item already rewritten no longer counts.
        Which items are folders is found once per direction, by the URL they had then (no
        URL of that direction is rewritten yet): only URLs change meanwhile, never an
        item's type or path, and a rewritten URL (``https://``) is never asked about."""
        folders = self._folders.get(direction)
        if folders is None:
            folders = self._folders[direction] = {}
            for item in self._task.get("inputs" if direction == "input" else "outputs") or ():
                if _folder_like(item, direction):
                    folders.setdefault(item.get("url"), []).append(item)
        candidates = folders.get(url)
        return candidates is not None and any(item.get("url") == url for item in candidates)


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


def _folder_like(item: Mapping[str, Any], direction: str) -> bool:
    """A DIRECTORY item, one with a ``path_prefix``, or an output whose path has a
    wildcard: its files are reached by appending their names to its URL."""
    if item.get("type") == "DIRECTORY" or item.get("path_prefix"):
        return True
    return direction == "output" and bool(_WILDCARDS.intersection(item.get("path") or ""))
