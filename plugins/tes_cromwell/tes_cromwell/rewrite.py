"""Turning a Cromwell task's URLs into blob URLs with a SAS the backend can use.

Inputs get a read SAS, outputs a write SAS, for ``TES_CROMWELL_SAS_LIFETIME_HOURS``. A
file gets a SAS for its own blob; a folder (a ``DIRECTORY`` item such as a glob folder or
the call folder of the "root" output mode, or a wildcard output) gets a container SAS on
the folder's URL, since its files are reached by appending their names to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tes_azure.blobstorage import TaskSigners

from .locate import locate
from .options import Options

if TYPE_CHECKING:
    from tes_core.blobstore import BlobStore
    from tes_core.submitter import Submitter

_WILDCARDS = frozenset("*?[")


def rewrite_url(
    url: str,
    direction: str,
    task: Mapping[str, Any],
    submitter: Submitter,
    options: Options,
    storage: BlobStore | None,
    backend_name: str,
    signers: TaskSigners | None = None,
) -> str | None:
    """The SAS URL for one of a Cromwell task's URLs, or ``None`` to leave it; the
    task's ``signers`` (one per task) sign its files cheaper.

    :raises SubmitterError: the URL cannot be reached as it is and cannot be rewritten.
    """
    location = locate(
        url, direction, options=options, storage=storage,
        workflow_id=submitter.workflow_id, root_workflow_id=submitter.root_workflow_id,
        backend_name=backend_name,
    )
    if location is None:
        return None
    write, account = direction == "output", location.account
    if _is_folder(url, direction, task):
        return account.folder_sas_url(
            location.container, location.blob.rstrip("/"), write=write,
            lifetime=options.sas_lifetime,
        )
    if signers is not None:
        return signers.sas_url(account, location.container, location.blob, write=write,
                               lifetime=options.sas_lifetime)
    return account.sas_url(
        location.container, location.blob, write=write, lifetime=options.sas_lifetime
    )


class TaskRewriter:
    """``rewrite(url, direction)`` for the URLs of one Cromwell task (``tes_url_rewriter``),
    with ``check``: the core then signs them when a backend gets the task, not at create
    (see :mod:`tes_core.task_urls`)."""

    def __init__(
        self, task: Mapping[str, Any], submitter: Submitter, options: Options,
        storage: BlobStore | None, backend_name: str,
    ) -> None:
        self._task, self._submitter, self._options = task, submitter, options
        self._storage, self._backend_name = storage, backend_name
        self._signers = TaskSigners()

    def __call__(self, url: str, direction: str) -> str | None:
        """The SAS URL for ``url`` (an ``"input"`` or ``"output"``), or ``None``."""
        return rewrite_url(url, direction, self._task, self._submitter, self._options,
                           self._storage, self._backend_name, self._signers)

    def check(self, url: str, direction: str) -> bool:
        """Whether this rewriter signs ``url``; raises as :meth:`__call__` does for a URL
        that cannot be reached as it is and cannot be rewritten."""
        submitter = self._submitter
        return locate(
            url, direction, options=self._options, storage=self._storage,
            workflow_id=submitter.workflow_id, root_workflow_id=submitter.root_workflow_id,
            backend_name=self._backend_name,
        ) is not None


def _is_folder(url: str, direction: str, task: Mapping[str, Any]) -> bool:
    """Whether the item with this URL is a folder (``DIRECTORY``, or a wildcard output)."""
    for item in task.get("inputs" if direction == "input" else "outputs") or ():
        if item.get("url") == url:
            return item.get("type") == "DIRECTORY" or (
                direction == "output" and not _WILDCARDS.isdisjoint(item.get("path", ""))
            )
    return url.endswith("/")
