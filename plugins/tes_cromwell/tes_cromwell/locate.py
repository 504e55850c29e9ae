"""Where a Cromwell URL lives in the server's blob storage, by the form Cromwell wrote it in.

Cromwell's ``root`` decides the form (see SUBMITTERS.md):

* a local path under one of Cromwell's local roots (``TES_CROMWELL_LOCAL_PREFIXES``,
  default ``/cromwell-executions`` and ``/tes-wd/shared-global``): the root is the mount
  point of the plugin's container, so ``/cromwell-executions/wf/<id>/x`` is blob
  ``wf/<id>/x`` there;
* ``/<account>/<container>/<blob>`` (Cromwell on Azure's blob paths) naming one of the
  server's accounts;
* ``https://<account>.blob.core.windows.net/<container>/<blob>`` (Terra's root) on one of
  the server's accounts, without a SAS yet.

Each is signed by the account it is in (the local roots: the default account; see
:mod:`tes_azure.accounts`).

Anything else (``ftp://``, ``gs://``, ``s3://``, ``drs://``, other ``http(s)://``, a URL
that already has a SAS) is left as it is, except what can never be reached: a local path
on a backend other than ``local``, an output to an account the server cannot sign for,
and a URL naming one of the server's accounts at another endpoint (Azure's
``https://<account>.blob.core.windows.net`` for an account configured on an emulator, or
the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tes_azure.accounts import StorageAccounts
from tes_core.errors import SubmitterError

from .options import Options

if TYPE_CHECKING:
    from tes_core.blobstore import BlobStore

CONFIGURE = "set TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL"
LOCAL_BACKENDS = frozenset({"local"})
"""Backends that run tasks on this machine, where a local path is a readable file."""

_AZURE_HOST = ".blob.core.windows.net"


@dataclass(frozen=True)
class Location:
    """A blob (or, for folders, a blob name prefix) in one of the server's accounts."""

    account: BlobStore
    """The account that signs for it."""
    container: str
    blob: str


def locate(
    url: str,
    direction: str,
    *,
    options: Options,
    storage: BlobStore | None,
    workflow_id: str | None,
    root_workflow_id: str | None,
    backend_name: str,
) -> Location | None:
    """Where ``url`` is in the server's storage; ``None`` to leave the URL as it is.

    :raises SubmitterError: the URL cannot be reached as it is and cannot be rewritten
        (no storage configured, an account the server cannot sign for, one of its
        accounts at another endpoint).
    """
    accounts = StorageAccounts.of(storage)
    if url.startswith("/"):
        return _local(url, options, accounts, workflow_id, root_workflow_id, backend_name)
    scheme = url.partition(":")[0].lower()
    if scheme not in ("http", "https"):
        return None
    parts = urlsplit(url)
    if "sig=" in parts.query:
        return None  # already signed by whoever wrote it
    found = accounts.find_url(url) if accounts is not None else None
    if found is not None and found.container:
        return Location(found.account, found.container, found.blob)
    moved = accounts.elsewhere(url) if accounts is not None else None
    if accounts is not None and moved is not None:
        raise SubmitterError(f"{url} is in {accounts.refusal(moved.name, moved.endpoint)}")
    host = (parts.hostname or "").lower()
    if direction == "output" and host.endswith(_AZURE_HOST):
        account = host[: -len(_AZURE_HOST)]
        if accounts is None:
            raise SubmitterError(
                f"{url} is in blob storage account {account!r} and the server has no "
                f"storage to sign uploads there: {CONFIGURE}"
            )
        raise SubmitterError(
            f"{url} is in {accounts.refusal(account)}; or point Cromwell's root at one of "
            "those accounts"
        )
    return None  # an input elsewhere: it may be public


def _local(
    path: str,
    options: Options,
    accounts: StorageAccounts | None,
    workflow_id: str | None,
    root_workflow_id: str | None,
    backend_name: str,
) -> Location | None:
    reads_local = backend_name in LOCAL_BACKENDS
    for prefix in options.local_prefixes:
        if path.startswith(prefix) and path[len(prefix):len(prefix) + 1] == "/":
            if accounts is None:
                if reads_local:
                    return None  # this machine's file, as Cromwell wrote it
                raise SubmitterError(
                    f"{path} is under Cromwell's local root {prefix}, which backend "
                    f"{backend_name!r} cannot read, and the server has no blob storage to "
                    f"put it in: {CONFIGURE} (TES_CROMWELL_CONTAINER names the container "
                    f"mounted at {prefix})"
                )
            blob = path[len(prefix) + 1:]
            container = options.container_for(workflow_id, root_workflow_id)
            return Location(accounts.default, container, blob)
    found = accounts.find_account_path(path) if accounts is not None else None
    if found is not None:
        return Location(found.account, found.container, found.blob)
    if reads_local:
        return None
    account = path.split("/", 2)[1]
    if accounts is None:
        raise SubmitterError(
            f"{path} is a local path, which backend {backend_name!r} cannot read: "
            f"{CONFIGURE} for /<account>/<container>/<blob> paths, or add its root to "
            "TES_CROMWELL_LOCAL_PREFIXES"
        )
    raise SubmitterError(
        f"{path} is a local path, which backend {backend_name!r} cannot read: it is under "
        f"none of Cromwell's local roots ({', '.join(options.local_prefixes) or 'none'}; "
        f"TES_CROMWELL_LOCAL_PREFIXES adds one), and as /<account>/<container>/<blob> it "
        f"is in {accounts.refusal(account)}"
    )
