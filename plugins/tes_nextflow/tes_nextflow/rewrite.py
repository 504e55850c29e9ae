"""Turning a Nextflow task's Azure URLs into blob URLs with a SAS the backend can use.

Inputs get read SAS, outputs write SAS. A file gets a SAS for its blob alone; a folder
(``DIRECTORY`` inputs and outputs, wildcard outputs with ``path_prefix``) gets a
container SAS on the folder's URL, since its files are reached by appending their
names to that URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

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


def rewrite_url(
    url: str,
    direction: str,
    task: Mapping[str, Any],
    form: str,
    settings: Settings,
    storage: BlobStore | None,
) -> str | None:
    """The SAS URL for one of a Nextflow task's URLs, or ``None`` to leave it as it is.

    :raises SubmitterError: the URL is in an Azure form but the server has no storage,
        or names an account that is not the server's, or names no container.
    """
    try:
        location = blob_location(url, form, storage.account_name if storage else None)
    except UrlFormError as exc:
        raise SubmitterError(str(exc)) from None
    if location is None:
        return None
    if storage is None:
        raise SubmitterError(
            f"{url} is in Azure Blob storage, and this server has no storage to reach it: set "
            "TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL"
            + (f" to the account {location.account!r}" if location.account else "")
        )
    _check_account(url, location, storage)
    write = direction == "output"
    lifetime = sas_lifetime(settings)
    if _is_folder(url, direction, task):
        return storage.folder_sas_url(location.container, location.blob, write=write,
                                      lifetime=lifetime)
    if not location.blob:
        raise SubmitterError(f"{url} names a container, not a file")
    return storage.sas_url(location.container, location.blob, write=write, lifetime=lifetime)


def _check_account(url: str, location: BlobLocation, storage: BlobStore) -> None:
    if location.account is None or location.account == storage.account_name:
        return
    raise SubmitterError(
        f"{url} is in storage account {location.account!r}, but this server's storage is "
        f"account {storage.account_name!r}: point TES_STORAGE_CONNECTION_STRING or "
        f"TES_STORAGE_ACCOUNT_URL at {location.account!r}, or run Nextflow with "
        f"azure.storage.accountName = '{storage.account_name}'"
    )


def _is_folder(url: str, direction: str, task: Mapping[str, Any]) -> bool:
    """Whether some input (output) with this URL is a folder or a wildcard output."""
    for item in task.get("inputs" if direction == "input" else "outputs") or ():
        if item.get("url") != url:
            continue
        if item.get("type") == "DIRECTORY" or item.get("path_prefix"):
            return True
        if direction == "output" and _WILDCARDS.intersection(item.get("path") or ""):
            return True
    return False
