"""A task's input and output URLs as its backend must get them.

Submitter plugins rewrite URLs (``tes_url_rewriter``, ``tes_rewrite_url``): a Nextflow
``az://`` path becomes a blob URL with a SAS token. A rewriter that has a ``check``
method signs late: when the task is created, ``check(url, direction)`` says whether the
rewriter takes the URL and raises :class:`~tes_core.errors.SubmitterError` for one it
could never sign (a 400 naming the field, as before), and the URL is stored as
submitted. Each time a backend gets the task (its submission, a worker's recovery, a new
attempt) the rewriter signs it afresh (:func:`rewrite_for_backend`). So:

* no SAS token is kept in the database or shown by ``GET /tasks``: a token stays as
  secret as the credential that signed it;
* a token's lifetime counts from the attempt it is for, not from the create: a task that
  waited two days for a pool still gets tokens that have not expired;
* a create does not wait for the signatures.

A rewriter without ``check`` rewrites when the task is created, and its URLs are stored,
as they always were. ``docs/plugin_hooks.md`` says how to write either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from .errors import SubmitterError

Rewriter = Callable[[str, str], str | None]
"""``rewrite(url, direction) -> new URL or None``; see ``tes_url_rewriter``."""

URL_LISTS = (("input", "inputs"), ("output", "outputs"))
"""The direction of each list of items with a ``url``, in the order they are rewritten."""


def rewrite_at_create(task: MutableMapping[str, Any], rewriters: Iterable[Rewriter]) -> None:
    """Apply ``rewriters`` (in the order they answer) to a new task's URLs, in place: a
    rewriter with ``check`` only checks (its URLs are signed later, see
    :func:`rewrite_for_backend`), the others rewrite now, each new URL written back before
    the next is asked about.

    :raises SubmitterError: naming the field at fault (``inputs[0].url``).
    """
    plan = [(rewriter, getattr(rewriter, "check", None)) for rewriter in rewriters]

    def handle(direction: str, item: MutableMapping[str, Any], url: str) -> bool:
        for rewriter, check in plan:
            if check is not None:
                if check(url, direction):
                    return False
                continue
            new_url = rewriter(url, direction)
            if new_url is not None:
                item["url"] = new_url
                return True
        return False

    _each_url(task, handle)


def signs_late(rewriter: Rewriter) -> bool:
    """Whether ``rewriter`` rewrites whenever a backend gets the task (it has ``check``)."""
    return getattr(rewriter, "check", None) is not None


def rewrite_for_backend(
    document: MutableMapping[str, Any], rewriters: Iterable[Rewriter]
) -> bool:
    """Apply the rewriters that sign late (see :func:`signs_late`) to a stored task's
    URLs, in place, as :func:`rewrite_at_create` applies the others; whether a URL changed.

    :raises SubmitterError: a URL that can no longer be signed (the server lost the
        account's credential since the create), naming the field.
    """
    late = [rewriter for rewriter in rewriters if signs_late(rewriter)]
    if not late:
        return False

    def handle(direction: str, item: MutableMapping[str, Any], url: str) -> bool:
        for rewriter in late:
            new_url = rewriter(url, direction)
            if new_url is not None:
                item["url"] = new_url
                return True
        return False

    return _each_url(document, handle)


def _each_url(
    task: Mapping[str, Any], handle: Callable[[str, MutableMapping[str, Any], str], bool]
) -> bool:
    """``handle(direction, item, url)`` for every input and output with a ``url``, inputs
    first; whether one of them answered ``True`` (changed the URL). A
    :class:`SubmitterError` it raises comes out naming the field."""
    changed = False
    for direction, key in URL_LISTS:
        for index, item in enumerate(task.get(key) or ()):
            url = item.get("url")
            if not url:
                continue
            try:
                changed = handle(direction, item, url) or changed
            except SubmitterError as exc:
                raise at_field(exc, f"{key}[{index}].url", f"{key}.{index}.url") from None
    return changed


def at_field(exc: SubmitterError, label: str, key: str) -> SubmitterError:
    """``exc`` naming the field at fault (``inputs[0].url``), unless the plugin named one."""
    if exc.errors:
        return exc
    return SubmitterError(f"{label}: {exc.message}", errors={key: [exc.message]})
