"""Where a Nextflow URL points in Azure Blob storage, by the form Nextflow wrote it in.

Pure parsing, no storage access. Nextflow writes Azure locations three ways:

* ``az://<container>/<blob>``: Nextflow's own URI, sent by the built-in executor up to
  24.02 (launch form ``builtin``).
* ``/<account>/<container>/<blob>``: Nextflow 24.04 and the nf-ga4gh plugin up to 1.4.1
  (launch form ``plugin``). Any other absolute path is a file on a shared disk.
* ``az://<account>/<container>/<blob>``: the nf-ga4gh plugin from 1.4.2 (launch form
  ``plugin``), which always puts the account (``azure.storage.accountName``) first.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from .detect import BUILTIN

AZ_SCHEME = "az://"


class UrlFormError(ValueError):
    """An ``az://`` URL too short to name a container."""


class BlobLocation(NamedTuple):
    """A container and blob (``""``: the container itself) in some storage account (a
    named tuple: made for every URL of every task, it is cheaper than a dataclass)."""

    container: str
    blob: str
    account: str | None
    """The account the URL names; ``None`` when the form carries none (the server's)."""


def blob_location(url: str, form: str, accounts: Collection[str]) -> BlobLocation | None:
    """Where ``url`` points, or ``None`` when it is not an Azure form (a local path,
    ``s3://``, ``https://`` ...).

    :param url: an input or output URL of a Nextflow task.
    :param form: the task's launch form (:data:`tes_nextflow.detect.PLUGIN` or ``BUILTIN``).
    :param accounts: the names of the server's storage accounts (none when no storage is
        configured): a path is taken for ``/<account>/...`` only when it starts with one.
    :raises UrlFormError: an ``az://`` URL with no container in it.
    """
    if url.startswith(AZ_SCHEME):
        parts = _parts(url[len(AZ_SCHEME):])
        if form == BUILTIN:
            if not parts:
                raise UrlFormError(f"{url!r} names no container (az://<container>/<path>)")
            return BlobLocation(parts[0], "/".join(parts[1:]), None)
        if len(parts) < 2:
            raise UrlFormError(
                f"{url!r} names no container (az://<account>/<container>/<path>)"
            )
        return BlobLocation(parts[1], "/".join(parts[2:]), parts[0])
    if form != BUILTIN and url.startswith("/") and url[1:].partition("/")[0] in accounts:
        parts = _parts(url[1:])
        if len(parts) >= 2:
            return BlobLocation(parts[1], "/".join(parts[2:]), parts[0])
    return None


def _parts(path: str) -> list[str]:
    """The non-empty ``/``-separated parts of ``path``; a plain split for the usual path
    with no empty part (no ``//``, no ``/`` at either end), which needs no filtering."""
    if path and "//" not in path and path[0] != "/" and path[-1] != "/":
        return path.split("/")
    return [part for part in path.split("/") if part]
