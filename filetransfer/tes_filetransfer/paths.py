"""Mapping container paths (``/data/x.txt``) to host paths under a task's root folder."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from .errors import TransferError

_MAX_SYMLINKS = 40


def check_container_path(path: object, what: str) -> str:
    """Return ``path`` if it is an absolute container path without ``..``; else raise."""
    if not isinstance(path, str) or not path:
        raise TransferError(f"{what}: 'path' is missing: give an absolute path such as /data/x")
    if not path.startswith("/"):
        raise TransferError(f"{what}: path {path!r} is not absolute: start it with '/'")
    if ".." in path.split("/"):
        raise TransferError(f"{what}: path {path!r} contains '..': give a plain absolute path")
    return path


def host_path(root: Path, container_path: str) -> Path:
    """Where ``container_path`` lives on the host, without following any symlink."""
    rel = container_path.lstrip("/")
    return Path(root) / rel if rel else Path(root)


def resolve_in_root(root: Path, container_path: str) -> Path:
    """Resolve ``container_path`` under ``root`` as if ``root`` were ``/``.

    Symlinks are followed component by component; absolute link targets are taken as
    container paths and ``..`` stops at ``root``, so the result never leaves ``root``
    (an executor's ``ln -s /etc/passwd out.txt`` cannot make us upload a host file).
    """
    root = Path(root)
    pending: deque[str] = deque(container_path.split("/"))
    current: list[str] = []
    links = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = root.joinpath(*current, part)
        if candidate.is_symlink():
            links += 1
            if links > _MAX_SYMLINKS:
                raise TransferError(
                    f"too many levels of symbolic links in {container_path}: fix the links"
                )
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            pending.extendleft(reversed(target.split("/")))
            continue
        current.append(part)
    return root.joinpath(*current)
