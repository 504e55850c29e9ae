"""A task's folder on this machine, and how container paths map into it.

Layout under ``<data_dir>/tasks/<task id>/``::

    tes-wd/            mounted at /tes-wd in every executor
      shared/          inputs staged once; container path /a/b lives at shared/a/b
    logs/              the end of each executor's stdout/stderr (``executor-N.stdout``
                       and ``.K``) when the task names no file for it

``/tes-wd/shared-global`` is ``<data_dir>/shared-global`` for tasks created without
authentication (one user), and ``<data_dir>/shared-global-owners/<key>`` for tasks
created with a bearer token, ``<key>`` a hash of the owner's tenant and subject: one
owner's tasks never see another's.

Executors may change everything below ``tes-wd`` (replace a folder with a symlink to
``/``, put a FIFO where a file was) and the next executor, or a later task in
shared-global, would follow it on the host. So the server reaches every path below the
task folder and the shared-global folder through :mod:`tes_filetransfer.beneath`,
which refuses symlinks; a refusal is a :class:`PlantedLink`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tes_filetransfer import beneath
from tes_filetransfer.outputs import has_wildcards

from .runtimes import rolling
from .runtimes.base import Mount

TES_WD = "/tes-wd"
SHARED_GLOBAL = "/tes-wd/shared-global"
OWNERS_FOLDER = "shared-global-owners"


OUTPUT_STREAMS = ("stdout", "stderr")
"""Executor output streams whose live copy a task's ``logs`` folder keeps."""
LOGS = "logs"
"""The folder in the task folder with the executors' live output (:func:`output_name`)."""


def output_name(index: int, stream: str) -> str:
    """The name, in the task's ``logs`` folder, of the live copy of what executor ``index``
    wrote to ``stream`` (``stdout`` or ``stderr``) when its task named no file for it: a
    :class:`~tes_runner.runtimes.rolling.RollingFile` (this name and this name + ``.K``)."""
    if stream not in OUTPUT_STREAMS:
        raise ValueError(f"stream must be one of {', '.join(OUTPUT_STREAMS)}")
    return f"executor-{int(index)}.{stream}"


def _read(folder_fd: int, name: str, limit: int, offset: int | None) -> tuple[int, bytes]:
    """:func:`rolling.read` with an :class:`~tes_filetransfer.beneath.UnsafePath` naming
    the path beneath the task folder (for :meth:`Workspace._beneath`)."""
    try:
        return rolling.read(folder_fd, name, limit, offset)
    except beneath.UnsafePath as exc:
        raise beneath.UnsafePath(f"{LOGS}/{exc.rel}", exc.problem) from None


class PlantedLink(RuntimeError):
    """A path of the task is a symlink (or a special file) where the server expects a
    plain folder or file: an executor replaced it. The message names the container path."""


def owner_key(subject: str | None, tenant: str | None) -> str | None:
    """The folder name of an owner's shared-global (``None`` for tasks without an owner).

    A hash, so no subject or tenant string ever becomes a path.
    """
    if subject is None:
        return None
    return hashlib.sha256(f"{tenant or ''}\n{subject}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Workspace:
    """The folders of one task."""

    base: Path
    shared_global: Path

    @classmethod
    def for_task(
        cls, workdirs: Path, data_dir: Path, task_id: str, owner: str | None = None
    ) -> Workspace:
        """The workspace of ``task_id`` (nothing is created yet); ``owner`` is the
        :func:`owner_key` of its owner, ``None`` for the single-user shared-global."""
        shared = data_dir / "shared-global" if owner is None else data_dir / OWNERS_FOLDER / owner
        return cls(base=workdirs / task_id, shared_global=shared)

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
        """Make the folders; raises :class:`PlantedLink` if one is a link (a resumed task)."""
        self.base.mkdir(parents=True, exist_ok=True)
        with self._opened(self.base) as fd:
            for rel in ("tes-wd/shared", "logs"):
                os.close(self._beneath(self.base, rel, beneath.open_dir, fd, create=True))
        # No task can reach the data folder, so a link there is the operator's own (say
        # shared-global on another disk); links inside shared-global are never followed.
        self.shared_global.mkdir(parents=True, exist_ok=True)

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

    def anchor(self, container_path: str) -> tuple[Path, str]:
        """``(trusted folder, path beneath it)`` of a container path: the task folder,
        which no executor can reach, or the shared-global folder itself."""
        folder, inner = self.locate(container_path)
        if folder == self.shared_global:
            return folder, inner.strip("/")
        return self.base, folder.relative_to(self.base).joinpath(inner.lstrip("/")).as_posix()

    def container_path(self, anchor: Path, rel: str) -> str:
        """The container path of ``rel`` beneath ``anchor`` (undoes :meth:`anchor`)."""
        rel = rel.strip("/")
        if anchor == self.shared_global:
            return f"{SHARED_GLOBAL}/{rel}".rstrip("/")
        if rel.startswith("tes-wd/shared/"):
            return "/" + rel[len("tes-wd/shared/"):]
        return "/" + rel

    def open_file(self, container_path: str, *, write: bool = False) -> int:
        """A descriptor of the task's regular file at ``container_path``, reached without
        following links (for writing: created, folders too, and emptied).

        Raises :class:`PlantedLink`, or :class:`FileNotFoundError` when reading a missing
        file. Close it with :func:`os.close`.
        """
        folder, rel = self.anchor(container_path)
        with self._opened(folder) as fd:
            return self._beneath(
                folder, rel, beneath.open_file, fd, write=write, create_parents=write
            )

    def open_logs(self, *, create: bool = False) -> int:
        """A descriptor of the task's ``logs`` folder (which no executor can reach), reached
        without following links and made if ``create``. Raises :class:`PlantedLink`, or
        :class:`FileNotFoundError` when it is missing. Close it with :func:`os.close`."""
        with self._opened(self.base) as fd:
            return self._beneath(self.base, LOGS, beneath.open_dir, fd, create=create)

    def read_output(
        self, index: int, stream: str, limit: int, offset: int | None = None
    ) -> tuple[int, bytes]:
        """``(first, data)``: at most ``limit`` bytes of the live copy of executor
        ``index``'s ``stream`` (:func:`output_name`), from byte ``offset`` of the stream
        (or the earliest still kept), or its end without ``offset``; ``first`` is where
        ``data`` starts in the stream. ``(0, b"")`` when there is none. Raises
        :class:`PlantedLink` if a link or special file is in the way."""
        try:
            fd = self.open_logs()
        except FileNotFoundError:
            return 0, b""
        try:
            name = output_name(index, stream)
            return self._beneath(self.base, name, _read, fd, limit, offset)
        finally:
            os.close(fd)

    def verified_root(self, folder: Path) -> Path:
        """``folder`` (one of the roots :meth:`locate` gives) after checking that no part of
        it below the task folder is a link; raises :class:`PlantedLink`."""
        if folder == self.shared_global:
            return folder
        with self._opened(self.base) as fd:
            rel = folder.relative_to(self.base).as_posix()
            self._beneath(self.base, rel, beneath.check, fd, beneath.DIR)
        return folder

    def prepare_mounts(self, mounts: Iterable[Mount], files: set[str]) -> None:
        """Make every missing mount source that is a folder, then :meth:`check_mounts`."""
        for mount in mounts:
            if mount.container_path in files:
                continue  # a missing input is the staging's business
            folder, rel = self.anchor(mount.container_path)
            with self._opened(folder) as fd:
                os.close(self._beneath(folder, rel, beneath.open_dir, fd, create=True))

    def check_mounts(self, mounts: Iterable[Mount], files: set[str]) -> None:
        """Right before a container starts: every bind source is still the folder (or, for
        the ``files`` container paths, the regular file) it was, reached without any link.

        Docker and podman resolve a bind source's links on the host, so an executor that
        replaced a folder with a link to ``/`` would give the next one the host's files.
        Raises :class:`PlantedLink`.
        """
        for mount in mounts:
            folder, rel = self.anchor(mount.container_path)
            kind = beneath.FILE if mount.container_path in files else beneath.DIR
            with self._opened(folder) as fd:
                try:
                    self._beneath(folder, rel, beneath.check, fd, kind)
                except FileNotFoundError:
                    raise PlantedLink(
                        f"{mount.container_path} was removed by an executor; it is mounted "
                        "into every executor, so executors must not delete or rename it"
                    ) from None

    def _beneath(self, folder: Path, rel: str, call: Any, fd: int, *args: Any, **kw: Any) -> Any:
        """``call(fd, rel, ...)``, an :class:`~tes_filetransfer.beneath.UnsafePath` turned
        into a :class:`PlantedLink` naming the container path."""
        try:
            return call(fd, rel, *args, **kw)
        except beneath.UnsafePath as exc:
            path = self.container_path(folder, exc.rel)
            raise PlantedLink(
                f"{path} {exc.problem}: executors must not replace a task's folders or files "
                "with links or special files (the server never follows them)"
            ) from None

    @contextlib.contextmanager
    def _opened(self, folder: Path) -> Iterator[int]:
        """A descriptor of a trusted folder: the task folder (never a link: its name is
        the task's), or shared-global (the operator's; it may be a link)."""
        fd = beneath.open_root(folder, follow=folder == self.shared_global)
        try:
            yield fd
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Delete the task's folder and all it holds."""
        shutil.rmtree(self.base, ignore_errors=True)


def file_mounts(task: dict[str, Any]) -> set[str]:
    """Container paths of the task's FILE inputs: the mount sources that are files."""
    return {
        str(PurePosixPath(item["path"]))
        for item in task.get("inputs") or ()
        if (item.get("type") or "FILE") == "FILE"
    }


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
        if has_wildcards(path):
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
