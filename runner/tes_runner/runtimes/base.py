"""The contract between the runner and a container runtime.

The runner plans *what* to run (image, argv, mounts, limits); a runtime
knows *how* to run it with one engine (Docker, podman, bubblewrap). Runtimes
block while the container runs and never touch the database.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from tes_filetransfer.beneath import UnsafePath

from ..images import image_reference_problem
from .rolling import RollingFile, RollingWriter

DEFAULT_PIDS_LIMIT = 4096
"""Most processes one executor may run unless configured (``RuntimeOptions.pids_limit``)."""


SANDBOX_ID = 65534
"""User and group id (``nobody``) a root runner's bubblewrap executors run as by default."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How an operator tunes a runtime: the same for every task of a server or a node.

    The server builds it from its settings; ``tes-runner run`` from ``runtime_options``
    in ``task.json`` (:meth:`from_mapping`).
    """

    pids_limit: int = DEFAULT_PIDS_LIMIT
    """Most processes one executor may run (0: no limit)."""
    sandbox_uid: int = SANDBOX_ID
    """User id bubblewrap executors run as when the runner is root (never 0)."""
    sandbox_gid: int = SANDBOX_ID
    """Group id bubblewrap executors run as when the runner is root (never 0)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RuntimeOptions:
        """Options from a JSON object; raises :class:`ValueError` naming a bad field."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"runtime_options: unknown field {unknown[0]!r} "
                f"(known: {', '.join(cls.__dataclass_fields__)})"
            )
        for key, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"runtime_options.{key} must be a non-negative integer")
        return cls(**data)


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot be used here; the message says what to install or start."""


class ContainerError(RuntimeError):
    """Infrastructure failure while preparing or running a container (not a non-zero exit)."""


def checked_image(image: str) -> str:
    """``image`` if it is a valid image reference; else raise :class:`ContainerError`.

    Runtimes call it right before an image reaches an engine's arguments: a stored or
    resumed task never went through the API's check.
    """
    problem = image_reference_problem(image)
    if problem:
        raise ContainerError(f"image {image[:200]!r} {problem}; the task cannot run")
    return image


def env_problem(env: Mapping[str, str]) -> str | None:
    """Why ``env`` cannot be an executor's environment, or ``None``.

    A name must be non-empty without ``=``, NUL or white space; a value without NUL.
    """
    for name, value in env.items():
        if not name or any(c in name for c in "=\0") or any(c.isspace() for c in name):
            return f"executor env name {name[:100]!r} is not a valid environment variable name"
        if "\0" in value:
            return f"executor env {name!r} holds a NUL character, which no environment can carry"
    return None


@dataclass(frozen=True)
class Mount:
    """A host folder or file bound into the container at ``container_path``."""

    host_path: Path
    container_path: str
    read_only: bool = False


OutputTarget = Path | RollingFile
"""Where an executor's stdout or stderr is written: a file that gets every byte (the one
the executor names), or a :class:`RollingFile` that keeps only the end (the live copy in
the task's ``logs`` folder)."""


class OutputSink(Protocol):
    """An :data:`OutputTarget` open for writing."""

    def write(self, data: bytes, /) -> int:
        """Append ``data``."""

    def flush(self) -> None:
        """Make what was written readable by others."""


def open_target(target: OutputTarget) -> IO[bytes] | RollingWriter:
    """``target`` opened for writing from its start (use it in a ``with`` block). Raises
    :class:`OSError` or :class:`~tes_filetransfer.beneath.UnsafePath`."""
    if isinstance(target, RollingFile):
        return target.open()
    return open(target, "wb")


@dataclass
class ContainerSpec:
    """Everything needed to run one TES executor as one container."""

    name: str
    image: str
    command: list[str]
    mounts: list[Mount] = field(default_factory=list)
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    stdin_path: Path | None = None
    """Host file fed to the container's standard input, if any."""
    stdout_path: OutputTarget | None = None
    """Where the standard output goes: the host file the executor asked for (every
    byte), else a capped live copy."""
    stderr_path: OutputTarget | None = None
    cpu_cores: int | None = None
    ram_gb: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    network: str | None = "none"
    """Network mode ("none" isolates the container); ``None`` leaves the engine's default."""
    gpus: bool = False
    """Give the container the machine's GPUs (the task asked for some, see
    :func:`requested_gpus`); only runtimes with :attr:`ContainerRuntime.gpu_args` can."""


def requested_gpus(document: Mapping[str, Any]) -> int:
    """The GPUs a task asks for: ``resources.backend_parameters.gpus`` (TES 1.1 has no GPU
    field; the Batch backend takes this parameter and picks a size with that many), 0 when
    absent or not a whole number."""
    resources = document.get("resources") or {}
    parameters = resources.get("backend_parameters") or {}
    raw = str(parameters.get("gpus") or "0").strip() if isinstance(parameters, Mapping) else "0"
    return int(raw) if raw.isdigit() else 0


@dataclass
class ContainerResult:
    """What one finished container reported."""

    exit_code: int
    start_time: datetime
    end_time: datetime
    stdout_tail: str = ""
    stderr_tail: str = ""
    not_started: bool = False
    """The command itself could not be started: not found (``exit_code`` 127) or found
    but not executable (126); ``stderr_tail`` holds the engine's message. The executor's
    failure, not the system's, so ``ignore_error`` applies as to any non-zero exit."""


COMMAND_NOT_FOUND = 127
"""Exit code of a command that does not exist (as POSIX shells, Docker and podman say)."""
COMMAND_NOT_EXECUTABLE = 126
"""Exit code of a command that exists but cannot be executed (permission, a folder)."""


def command_not_started(
    exit_code: int, message: str, start_time: datetime, end_time: datetime,
    stderr_path: OutputTarget | None = None,
) -> ContainerResult:
    """The result of an executor whose command could not be started.

    ``message`` (the engine's own words) becomes the executor's stderr: its tail, and the
    whole of its ``stderr`` file when the executor names one.
    """
    text = message.strip() + "\n"
    if stderr_path is not None:
        try:
            with open_target(stderr_path) as handle:
                handle.write(text.encode())
        except (OSError, UnsafePath) as exc:
            raise ContainerError(f"cannot write the executor's stderr file: {exc}") from exc
    return ContainerResult(
        exit_code=exit_code, start_time=start_time, end_time=end_time,
        stderr_tail=text, not_started=True,
    )


class ContainerRuntime(abc.ABC):
    """One way of running executors as isolated processes on this machine."""

    name: str = ""
    limits_note: str | None = None
    """Set when the runtime cannot apply ``cpu_cores``/``ram_gb``: a line for the task's logs."""
    gpu_args: tuple[str, ...] = ()
    """Engine options that give a container the machine's GPUs; empty: this runtime cannot
    (a task asking for GPUs gets a line in its logs saying so)."""

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> str | None:
        """Return ``None`` if usable here, else a short reason why not."""

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> ContainerRuntime:
        """This runtime configured by ``options`` (limits, users)."""
        return cls()

    def verify(self) -> str | None:
        """Check this configured instance can run executors safely; ``None`` if so."""
        return None

    def health(self) -> str | None:
        """Whether this runtime still works (an engine may stop after start-up): ``None``
        if so, else why not. Cheap enough for a readiness probe every few seconds."""
        return type(self).probe()

    @abc.abstractmethod
    def prepare_image(
        self, image: str, on_pull: Callable[[], None] | None = None
    ) -> list[str]:
        """Make ``image`` runnable (pull if missing); return lines for the task's system logs.

        ``on_pull`` is called right before a pull starts (so a task can say it waits for
        one). Raises :class:`ContainerError` with an actionable message when the image
        cannot be had.
        """

    def login(self, server: str, username: str, secret: str) -> None:
        """Log the engine in to registry ``server`` for the pulls that follow; raises
        :class:`ContainerError` naming the registry (never ``secret``). The default: this
        runtime cannot log in."""
        raise ContainerError(
            f"cannot log in to registry {server}: the {self.name} runtime cannot log in to "
            "a registry (use docker or podman)"
        )

    @abc.abstractmethod
    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run the container to completion and return its result.

        Raises :class:`ContainerError` on infrastructure failure.
        """

    can_attach: bool = False
    """Whether :meth:`attach` can pick up a container started by a process that died."""

    def attach(
        self,
        name: str,
        *,
        stdout_path: OutputTarget | None = None,
        stderr_path: OutputTarget | None = None,
    ) -> ContainerResult | None:
        """Wait for an already started container ``name`` (e.g. after a server restart).

        Returns its result (its output also written to ``stdout_path`` /
        ``stderr_path`` when given), or ``None`` when the runtime cannot
        re-attach or the container never started. The default cannot re-attach.
        """
        return None

    @abc.abstractmethod
    def stop(self, name: str) -> None:
        """Stop the container called ``name`` now, if it runs; never raises if it is gone."""

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Remove every trace of container ``name``; never raises if it is gone."""

    def remove_soon(self, name: str) -> None:
        """Like :meth:`remove`, but the caller need not wait: a runtime may remove
        ``name`` in the background, batched with others. Only for containers nobody
        will look at again (their task has reported its end). The default removes now."""
        self.remove(name)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for the removals :meth:`remove_soon` queued; ``False`` if ``timeout`` passed."""
        return True
