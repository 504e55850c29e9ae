"""The storage access policy of this server's tasks, built from its settings.

Every backend moves a task's files with ``tes-filetransfer`` under one
:class:`~tes_filetransfer.policy.AccessPolicy`: the local backend in the worker, a
remote backend on its nodes (send :meth:`AccessPolicy.portable` along with the job and
rebuild it there with :meth:`AccessPolicy.from_portable`). ``docs/security.md`` explains
the policy and its settings. :func:`check_storages_installed` refuses, at create, a URL
whose storage is not installed on this server (a tes-filetransfer extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tes_filetransfer.policy import AccessPolicy, default_local_dirs
from tes_filetransfer.storage import unavailable_storages

from .config import Settings
from .errors import BadRequest


def access_policy(settings: Settings) -> AccessPolicy:
    """What tasks' inputs and outputs may reach (``TES_ALLOWED_LOCAL_DIRS``,
    ``TES_ALLOWED_HOSTS``); the server's data folder, cache, task folders and SQLite
    database are always denied.

    Unset ``TES_ALLOWED_LOCAL_DIRS`` means ``/tmp`` and the folder the server started in
    with authentication off (one user, their own machine), nothing with it on.
    """
    dirs = settings.allowed_local_dirs
    if dirs is None:
        dirs = () if settings.auth_enabled else default_local_dirs()
    denied: list[str | Path] = [settings.data_dir, settings.workdirs]
    if settings.local_cache_dir:
        denied.append(settings.local_cache_dir)
    if settings.database.startswith("sqlite:///"):
        denied.append(settings.database.removeprefix("sqlite:///"))
    return AccessPolicy.build(
        dirs, settings.allowed_hosts, denied=denied,
        dirs_setting="TES_ALLOWED_LOCAL_DIRS", hosts_setting="TES_ALLOWED_HOSTS",
    )


def check_storages_installed(task: Mapping[str, Any]) -> None:
    """Raise a 400 naming each input or output URL (``inputs.0.url``) whose storage needs
    a tes-filetransfer extra that is not installed here, with the pip command that adds it,
    instead of letting the task fail later while staging."""
    missing = unavailable_storages(task)
    if not missing:
        return
    field, first = next(iter(missing.items()))
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    raise BadRequest(f"invalid task: {field}: {first}{more}",
                     errors={name: [str(exc)] for name, exc in missing.items()})
