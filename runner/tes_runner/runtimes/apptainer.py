"""Apptainer and Singularity: executors run with ``apptainer exec`` (or ``singularity exec``).

What HPC sites install instead of Docker: no daemon, images fetched from the TES
image's registry (``docker://<image>``) into the user's Apptainer cache. Each executor
is one foreground ``exec`` process of this runner:

- ``--containall``: no host home, ``/tmp`` or working folder, private PID and IPC
  namespaces, a clean environment; ``--no-mount bind-paths`` drops the site's default
  binds too, so the executor sees only the task's mounts (``--bind`` each, ``ro`` for
  inputs) and the image;
- ``--net --network none`` unless the task was allowed another network;
- the executor's ``env`` reaches the container as ``APPTAINERENV_<NAME>`` variables of
  the ``exec`` process (never its command line, which ``ps`` shows to every user);
- a runner running as root is refused (:meth:`ApptainerRuntime.verify`): the executor
  would be host root.

Apptainer applies no CPU or memory limit here (that needs cgroup delegation): on a
cluster the batch system's allocation bounds the job (:attr:`limits_note`). A process
dies with its runner, so :meth:`attach` cannot re-attach.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping

from ._capture import run_captured
from ._foreground import ForegroundProcesses
from .base import (
    COMMAND_NOT_FOUND,
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    RuntimeOptions,
    checked_image,
    command_not_started,
    env_problem,
)

PROBE_TIMEOUT = 10.0
"""Seconds ``<binary> version`` gets in :meth:`ApptainerRuntime.probe`."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FATAL = re.compile(r"^FATAL:\s*(?P<message>.*)$", re.MULTILINE)
_NOT_FOUND = re.compile(r"executable file not found|no such file or directory", re.IGNORECASE)
APPTAINER_FAILURE = 255
"""``exec``'s own exit code when it failed (bad bind, image not fetched, no command)."""


class ApptainerRuntime(ContainerRuntime):
    """Runs executors with ``apptainer exec docker://<image>``."""

    name = "apptainer"
    env_prefix = "APPTAINERENV_"
    """Variables of the ``exec`` process with this prefix are set in the container."""
    limits_note = (
        "apptainer does not apply cpu_cores or ram_gb: executors are bounded by the "
        "batch system's allocation (or this machine)"
    )

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or shutil.which(self.name) or self.name
        self._processes = ForegroundProcesses()

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> ApptainerRuntime:
        """This runtime (no option applies to it: limits come from the batch system)."""
        return cls()

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when the ``apptainer`` (``singularity``) command is here and answers."""
        binary = shutil.which(cls.name)
        if binary is None:
            return f"{cls.name} is not installed (see https://apptainer.org/docs/admin/)"
        try:
            result = subprocess.run(
                [binary, "version"], stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=PROBE_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {binary} version: {exc}"
        if result.returncode != 0:
            return f"{binary} version failed: {result.stderr.strip()[:200]}"
        return None

    def verify(self) -> str | None:
        """Refuse to run executors as root (Apptainer keeps the caller's identity)."""
        if os.geteuid() == 0:
            return (
                f"{self.name} executors would run as root: run tes-runner as an "
                "unprivileged user (the job's user)"
            )
        return None

    def prepare_image(
        self, image: str, on_pull: Callable[[], None] | None = None
    ) -> list[str]:
        """Check the reference; ``exec`` fetches the image into Apptainer's cache itself."""
        checked_image(image)
        return []

    def image_uri(self, image: str) -> str:
        """The URI ``exec`` runs for a TES image reference."""
        return f"docker://{checked_image(image)}"

    def build_args(self, spec: ContainerSpec) -> list[str]:
        """The full ``exec`` command line of ``spec`` (the environment goes separately,
        see :meth:`exec_env`). Raises :class:`ContainerError` for a path a bind cannot
        carry."""
        args = [self.binary, "exec", "--containall", "--no-mount", "bind-paths"]
        if spec.network:
            args += ["--net", "--network", spec.network]
        for mount in spec.mounts:
            source, target = str(mount.host_path), mount.container_path
            for path in (source, target):
                if any(c in path for c in ",:\n"):
                    raise ContainerError(
                        f"{self.name} cannot bind {path!r}: a path with ',' or ':' cannot "
                        "be written in a bind"
                    )
            args += ["--bind", f"{source}:{target}:{'ro' if mount.read_only else 'rw'}"]
        if spec.workdir:
            args += ["--pwd", spec.workdir]
        args += [self.image_uri(spec.image), *spec.command]
        return args

    def exec_env(self, env: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
        """The environment of the ``exec`` process: ``base`` without variables meant for
        containers, plus the executor's ``env`` under :attr:`env_prefix`."""
        problem = env_problem(env)
        if problem:
            raise ContainerError(problem)
        odd = next((name for name in env if not _ENV_NAME.fullmatch(name)), None)
        if odd is not None:
            raise ContainerError(
                f"executor env name {odd[:100]!r} cannot be passed by {self.name}: use "
                "letters, digits and '_' only"
            )
        kept = {k: v for k, v in base.items() if not k.startswith(self.env_prefix)}
        return {**kept, **{f"{self.env_prefix}{k}": v for k, v in env.items()}}

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run ``spec`` with ``exec`` in the foreground and return its exit code and output."""
        args = self.build_args(spec)
        env = self.exec_env(spec.env, os.environ)
        problem = self.verify()
        if problem:
            raise ContainerError(problem)
        with self._processes.tracking(spec.name) as remember:
            captured = run_captured(
                args, stdin_path=spec.stdin_path, stdout_path=spec.stdout_path,
                stderr_path=spec.stderr_path, env=env, new_session=True, on_start=remember,
            )
        fatal = _FATAL.search(captured.stderr_tail)
        if captured.returncode == APPTAINER_FAILURE and fatal:
            message = fatal["message"].strip()
            if _NOT_FOUND.search(message) and spec.command[0] in message:
                return command_not_started(
                    COMMAND_NOT_FOUND, message, captured.start_time, captured.end_time,
                    spec.stderr_path,
                )
            raise ContainerError(f"{self.name} could not run executor {spec.name!r}: {message}")
        return captured.result()

    def stop(self, name: str) -> None:
        """Kill the process group of executor ``name``; quiet if it is not running."""
        self._processes.stop(name)

    def remove(self, name: str) -> None:
        """An ``exec`` leaves no container behind; stops it if it still runs."""
        self.stop(name)


class SingularityRuntime(ApptainerRuntime):
    """The same with SingularityCE's ``singularity`` command."""

    name = "singularity"
    env_prefix = "SINGULARITYENV_"
    limits_note = ApptainerRuntime.limits_note.replace("apptainer", "singularity")
