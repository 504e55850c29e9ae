"""A task's folder on this machine, and how container paths map into it.

Layout under ``<data_dir>/tasks/<task id>/``::

    tes-wd/            mounted at /tes-wd in every executor
      shared/          inputs staged once; container path /a/b lives at shared/a/b
    logs/              full stdout/stderr of each executor

``<data_dir>/shared-global`` is mounted at /tes-wd/shared-global in every task.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...schemas.validators import has_wildcard
from .runtimes.base import Mount

TES_WD = "/tes-wd"
SHARED_GLOBAL = "/tes-wd/shared-global"


@dataclass(frozen=True)
class Workspace:
    """The folders of one task."""

    base: Path
    shared_global: Path

    @classmethod
    def for_task(cls, workdirs: Path, data_dir: Path, task_id: str) -> Workspace:
        """The workspace of ``task_id`` (nothing is created yet)."""
        return cls(base=workdirs / task_id, shared_global=data_dir / "shared-global")

    @property
    def tes_wd(self) -> Path:
        """Host folder mounted at ``/tes-wd``."""
        return self.base / "tes-wd"

    @property
    def root(self) -> Path:
        """Host folder holding every TES path of the task (``/tes-wd/shared``)."""
        return self.tes_wd / "shared"

    @property
    def logs(self) -> Path:
        """Host folder for the executors' full stdout and stderr."""
        return self.base / "logs"

    def create(self) -> None:
        """Make the folders."""
        for folder in (self.root, self.logs, self.shared_global):
            folder.mkdir(parents=True, exist_ok=True)

    def locate(self, container_path: str) -> tuple[Path, str]:
        """``(host folder, path inside it)`` for a container path.

        Paths under ``/tes-wd`` map to the task's ``tes-wd`` folder (and
        ``/tes-wd/shared-global`` to the global one); every other path maps
        into ``/tes-wd/shared``, so ``/a/b`` and ``/tes-wd/shared/a/b`` are one file.
        """
        if _under(container_path, SHARED_GLOBAL):
            return self.shared_global, "/" + container_path[len(SHARED_GLOBAL):].lstrip("/")
        if _under(container_path, TES_WD):
            return self.tes_wd, "/" + container_path[len(TES_WD):].lstrip("/")
        return self.root, container_path

    def host_path(self, container_path: str) -> Path:
        """Where the container path ``/a/b`` lives on this machine."""
        folder, inner = self.locate(container_path)
        return folder / inner.lstrip("/")

    def remove(self) -> None:
        """Delete the task's folder and all it holds."""
        shutil.rmtree(self.base, ignore_errors=True)


def plan_mounts(task: dict[str, Any], workspace: Workspace) -> list[Mount]:
    """The binds that make every TES path of ``task`` visible at its path in each executor.

    Each input, output folder, wildcard prefix and volume becomes a mount point;
    a mount point inside another is dropped (the outer one already shows it,
    because every path maps into the same host folder). Mounts holding only
    inputs are read-only.
    """
    points: dict[str, bool] = {}  # container path -> read-only

    def add(path: str, read_only: bool) -> None:
        path = str(PurePosixPath(path))
        points[path] = points.get(path, True) and read_only

    for item in task.get("inputs") or ():
        add(item["path"], read_only=True)
    for item in task.get("outputs") or ():
        path = item["path"]
        if has_wildcard(path):
            add(item.get("path_prefix") or "/", read_only=False)
        elif item.get("type") == "DIRECTORY":
            add(path, read_only=False)
        else:
            add(str(PurePosixPath(path).parent), read_only=False)
    for volume in task.get("volumes") or ():
        add(volume, read_only=False)

    kept: list[tuple[str, bool]] = []
    for path in sorted(points, key=lambda p: (p.count("/"), p)):
        if path == "/" or _under(path, TES_WD):
            continue
        outer = next((k for k in kept if _under(path, k[0])), None)
        if outer is None:
            kept.append((path, points[path]))
        elif outer[1] and not points[path]:
            # A writable path inside a read-only input folder: make the outer one writable.
            kept[kept.index(outer)] = (outer[0], False)
    mounts = [
        Mount(host_path=workspace.tes_wd, container_path=TES_WD),
        Mount(host_path=workspace.shared_global, container_path=SHARED_GLOBAL),
    ]
    mounts += [
        Mount(host_path=workspace.host_path(path), container_path=path, read_only=read_only)
        for path, read_only in kept
    ]
    return mounts


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def prepare_mount_sources(task: dict[str, Any], mounts: list[Mount]) -> None:
    """Create the host side of every mount that does not exist yet (outputs, volumes)."""
    input_paths = {item["path"] for item in task.get("inputs") or ()}
    for mount in mounts:
        if mount.host_path.exists():
            continue
        if mount.container_path in input_paths:
            continue  # a missing input is the staging's business
        mount.host_path.mkdir(parents=True, exist_ok=True)
