"""The hook implementations: the entry point ``cromwell`` in the group ``tes``.

Detection tags a Cromwell task; only tasks detected as Cromwell's are rewritten or get
inputs added, so other engines' tasks pass through untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tes_core import hookimpl
from tes_core.config import ConfigError, Settings
from tes_core.errors import ApiError

from . import options as _options
from .detect import NAME, detect
from .inject import unlisted_inputs
from .rewrite import TaskRewriter

if TYPE_CHECKING:
    from tes_core.backends.base import Backend
    from tes_core.blobstore import BlobStore
    from tes_core.submitter import Submitter


@hookimpl
def tes_detect_submitter(task: dict[str, Any]) -> Submitter | None:
    """Cromwell's workflow, sub-workflow and call behind ``task``, if Cromwell sent it."""
    call = detect(task)
    return call.submitter() if call is not None else None


@hookimpl
def tes_url_rewriter(
    task: dict[str, Any],
    submitter: Submitter | None,
    backend: Backend,
    settings: Settings,
    storage: BlobStore | None,
) -> TaskRewriter | None:
    """For a Cromwell task, ``rewrite(url, direction)``: a Cromwell URL as a blob URL with
    a SAS, or ``None`` to leave it; ``None`` for other engines' tasks."""
    if submitter is None or submitter.name != NAME:
        return None
    return TaskRewriter(task, submitter, _settings(settings), storage, backend.name)


@hookimpl
def tes_inject_inputs(
    task: dict[str, Any],
    submitter: Submitter | None,
    backend: Backend,
    settings: Settings,
    storage: BlobStore | None,
) -> list[dict[str, Any]] | None:
    """The files in the call's execution folder that Cromwell did not list."""
    if submitter is None or submitter.name != NAME or storage is None:
        return None
    options = _settings(settings)
    if not options.list_execution_folder:
        return None  # before detecting the call again: the workaround is switched off
    call = detect(task)
    if call is None:
        return None
    return unlisted_inputs(task, call, options, storage, backend.name) or None


def _settings(settings: Settings) -> _options.Options:
    try:
        return _options.options(settings)
    except ConfigError as exc:
        raise ApiError(f"the tes-cromwell plugin is misconfigured: {exc}") from None
