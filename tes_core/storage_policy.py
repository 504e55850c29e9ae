"""The storage access policy of this server's tasks, built from its settings.

Every backend moves a task's files with ``tes-filetransfer`` under one
:class:`~tes_filetransfer.policy.AccessPolicy`: the local backend in the worker, a
remote backend on its nodes (send :meth:`AccessPolicy.portable` along with the job and
rebuild it there with :meth:`AccessPolicy.from_portable`). ``docs/security.md`` explains
the policy and its settings.
"""

from __future__ import annotations

from pathlib import Path

from tes_filetransfer.policy import AccessPolicy, default_local_dirs

from .config import Settings


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
