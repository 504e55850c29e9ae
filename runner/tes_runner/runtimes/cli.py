"""A shared base for container engines driven through their command line.

Docker and podman take the same ``run``/``inspect``/``wait``/``logs``/``kill``/``rm``
commands and flags, so one class drives both; subclasses only say which binary
and how to tell whether the engine answers (:meth:`ContainerRuntime.probe`).

Containers are not started with ``--rm``: they stay until :meth:`remove`, so that
:meth:`attach` can read the exit code and logs of a container that finished
while the server was down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ._capture import run_captured
from ._reaper import Reaper
from .base import (
    COMMAND_NOT_EXECUTABLE,
    COMMAND_NOT_FOUND,
    DEFAULT_PIDS_LIMIT,
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    OutputTarget,
    RuntimeOptions,
    checked_image,
    command_not_started,
    env_problem,
)

log = logging.getLogger(__name__)

_NOT_FOUND = re.compile(r"no such (container|object)|no container with name or id", re.IGNORECASE)
_NAME_IN_USE = re.compile(r"container name .{0,200}? is already in use", re.IGNORECASE)
"""docker's and podman's refusal of a ``run --name`` that an existing container holds."""
_NOT_RUNNING = re.compile(
    r"is not running|can only kill running containers|state improper", re.IGNORECASE
)
_ENGINE_FAILURE_CODES = (125, 126, 127)
"""``docker run``/``podman run`` exit codes that may mean the engine itself failed."""
_COMMAND_FAILURE_CODES = (COMMAND_NOT_EXECUTABLE, COMMAND_NOT_FOUND)
"""What both engines document for "the contained command cannot be invoked / found"."""
_EXEC_FAILURE = re.compile(r"\bexecutable file\b|\bopen executable\b", re.IGNORECASE)
"""crun's words for a command it cannot start (runc's name the command, see
:func:`command_failure`)."""

_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d\d:?\d\d)?$"
)


def parse_engine_time(text: str) -> datetime | None:
    """Parse an engine timestamp (RFC 3339 with nanoseconds) into an aware UTC datetime.

    Returns ``None`` for an empty value or Go's zero time (a container that
    never started or has not finished).
    """
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None
    value = datetime.fromisoformat(match["base"])
    if value.year <= 1:
        return None
    if match["frac"]:
        value = value.replace(microsecond=int(match["frac"][:6].ljust(6, "0")))
    tz = match["tz"]
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        value = value.replace(tzinfo=timezone(sign * offset))
    else:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def engine_message(stderr: str) -> str:
    """The engine's error in ``stderr`` of a ``run``, on one line, without its usage hint."""
    return " ".join(
        line.strip() for line in stderr.splitlines() if line.strip() and "--help" not in line
    )


def command_failure(code: int, message: str, command: Sequence[str]) -> bool:
    """Whether a ``run`` that exited ``code`` without starting its container failed because
    the executor's command could not be started (rather than the engine or its set-up).

    Both engines exit 127 (not found) or 126 (not executable) for that, but podman also
    for some failures of its own (a missing workdir, a failed mount): so the engine's
    ``message`` must also be the OCI runtime's refusal to execute the command: it names
    the command quoted (runc: ``exec: "foo": executable file not found in $PATH``) or
    speaks of the executable (crun: ``executable file `foo` not found``, ``open
    executable: Permission denied``).
    """
    if code not in _COMMAND_FAILURE_CODES or not command:
        return False
    quoted = (f'"{command[0]}"', f"`{command[0]}`", f"'{command[0]}'", json.dumps(command[0]))
    return any(q in message for q in quoted) or bool(_EXEC_FAILURE.search(message))


def write_env_file(path: Path, env: Mapping[str, str]) -> Path:
    """Write ``env`` as a Docker/podman ``--env-file`` readable only by this user.

    Such files hold one ``NAME=value`` a line, the value taken literally: a value
    with a line break cannot be carried and raises :class:`ContainerError`.
    """
    lines = []
    for name, value in env.items():
        if "\n" in value or "\r" in value:
            raise ContainerError(
                f"executor env {name!r} holds a line break, which docker and podman cannot "
                "take without showing the value to every user of this machine; pass it as an "
                "input file instead, or run on bubblewrap"
            )
        if name.startswith("#"):
            raise ContainerError(f"executor env name {name[:100]!r} is not a valid name")
        lines.append(f"{name}={value}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    return path


class CliRuntime(ContainerRuntime):
    """Runs each executor as one attached ``<engine> run`` process.

    ``binary`` defaults to the engine found on ``PATH``; ``env`` adds variables
    (e.g. ``DOCKER_HOST``, ``CONTAINERS_CONF``) to this process's environment
    for every engine command. ``pids_limit`` bounds each container's processes
    (``--pids-limit``; 0: none).

    An executor's ``env`` goes to the engine in a ``0600`` ``--env-file`` in a private
    temporary folder: never on the command line (``ps`` shows it to every local user)
    nor in the CLI's own environment (the CLI would act on names such as
    ``LD_PRELOAD`` or ``DOCKER_HOST``).
    """

    can_attach = True

    command_timeout: float = 60.0
    """Seconds allowed for a short engine command (inspect, kill, rm)."""
    stop_retry_seconds: float = 30.0
    """How long :meth:`stop` keeps trying while a run of that name is starting."""
    rm_options: tuple[str, ...] = ()
    """Options :meth:`remove_soon`'s batched ``rm`` needs so that a name already gone
    does not keep the others."""

    def __init__(
        self,
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        pull_timeout: float = 1800.0,
        pids_limit: int = DEFAULT_PIDS_LIMIT,
    ) -> None:
        self.binary = binary or shutil.which(self.name) or self.name
        self.extra_env = dict(env or {})
        self.pull_timeout = pull_timeout
        self.pids_limit = max(0, pids_limit)
        self._known_images: set[str] = set()
        self._active: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._reaper = Reaper(self._remove_many, name=f"tes-{self.name}-rm")

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> CliRuntime:
        """This engine with the process limit of ``options``."""
        return cls(pids_limit=options.pids_limit)

    # ------------------------------------------------------------------ helpers

    def _env(self) -> dict[str, str] | None:
        return {**os.environ, **self.extra_env} if self.extra_env else None

    def _cli(
        self, args: Sequence[str], timeout: float | None = -1.0
    ) -> subprocess.CompletedProcess:
        """Run ``<engine> ARGS`` and capture its output as text.

        ``timeout`` in seconds; negative means :attr:`command_timeout`, ``None`` no limit.
        """
        argv = [self.binary, *args]
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                env=self._env(),
                timeout=self.command_timeout if timeout is not None and timeout < 0 else timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise ContainerError(
                f"'{' '.join(argv)}' did not answer within {exc.timeout} s"
            ) from exc
        except OSError as exc:
            raise ContainerError(f"cannot run {self.binary!r}: {exc}") from exc

    def _inspect_state(self, name: str) -> dict[str, Any] | None:
        """The engine's ``State`` of container ``name``, or ``None`` if there is none."""
        result = self._cli(["container", "inspect", "--format", "{{json .State}}", name])
        if result.returncode != 0:
            if _NOT_FOUND.search(result.stderr) or not result.stderr.strip():
                return None
            raise ContainerError(
                f"{self.name} could not inspect container {name!r}: {_last_line(result.stderr)}"
            )
        try:
            state = json.loads(result.stdout.strip().splitlines()[0])
        except (ValueError, IndexError) as exc:
            raise ContainerError(
                f"{self.name} inspect of {name!r} gave no readable state: {result.stdout!r}"
            ) from exc
        return state if isinstance(state, dict) else None

    def _started(self, container: str) -> bool:
        """Whether ``container`` (name or id) exists and its process was started."""
        try:
            state = self._inspect_state(container)
        except ContainerError:
            return False
        return state is not None and parse_engine_time(str(state.get("StartedAt", ""))) is not None

    # ------------------------------------------------------------------ contract

    def build_run_args(
        self, spec: ContainerSpec, extra: Sequence[str] = (), env_file: Path | None = None
    ) -> list[str]:
        """The ``run`` arguments (after the binary) that start ``spec`` attached.

        ``extra`` options go just before the image, after them ``--`` so that nothing
        from the task can be read as an engine option. ``env_file`` holds the
        executor's environment (see :func:`write_env_file`). Raises
        :class:`ContainerError` for an image that is not a valid reference.
        """
        image = checked_image(spec.image)
        args = ["run", "--name", spec.name, "--security-opt", "no-new-privileges"]
        if self.pids_limit:
            args += ["--pids-limit", str(self.pids_limit)]
        if spec.stdin_path is not None:
            args.append("-i")
        if spec.network:
            args += ["--network", spec.network]
        for mount in spec.mounts:
            volume = f"{mount.host_path}:{mount.container_path}"
            args += ["-v", f"{volume}:ro" if mount.read_only else volume]
        if spec.workdir:
            args += ["-w", spec.workdir]
        if env_file is not None:
            args += ["--env-file", str(env_file)]
        if spec.cpu_cores:
            args += ["--cpus", str(spec.cpu_cores)]
        if spec.ram_gb:
            mib = max(6, round(spec.ram_gb * 1024))  # engines refuse less than 6 MiB
            args += ["--memory", f"{mib}m"]
        if spec.gpus and self.gpu_args:
            args += list(self.gpu_args)
        for key, value in spec.labels.items():
            args += ["--label", f"{key}={value}"]
        args += extra
        args += ["--", image, *spec.command]
        return args

    def prepare_image(
        self, image: str, on_pull: Callable[[], None] | None = None
    ) -> list[str]:
        """Make sure ``image`` is here: ``image inspect``, else ``pull``; cached per runtime.

        Raises :class:`ContainerError` for an image that is not a valid reference.
        """
        checked_image(image)
        if image in self._known_images:
            return []
        if self._cli(["image", "inspect", "--format", "{{.Id}}", "--", image]).returncode == 0:
            self._known_images.add(image)
            return []
        lines = [f"{self.name}: image '{image}' is not on this machine; pulling it"]
        if on_pull is not None:
            on_pull()
        pulled = self._cli(["pull", "--", image], timeout=self.pull_timeout)
        if pulled.returncode != 0:
            reason = _last_line(pulled.stderr) or _last_line(pulled.stdout) or "unknown error"
            raise ContainerError(
                f"image '{image}' is not on this machine and could not be pulled: {reason}. "
                f"Build or tag it locally ({self.name} tag …) or make the registry reachable."
            )
        self._known_images.add(image)
        lines.append(f"{self.name}: pulled image '{image}'")
        return lines

    def login(self, server: str, username: str, secret: str) -> None:
        """``<engine> login --username USER --password-stdin SERVER``, ``secret`` on its
        standard input (never on a command line, where ``ps`` shows it); bounded by
        :attr:`command_timeout`. Raises :class:`ContainerError` naming the registry."""
        argv = [self.binary, "login", "--username", username, "--password-stdin", "--", server]
        try:
            result = subprocess.run(
                argv, input=secret, capture_output=True, text=True, errors="replace",
                env=self._env(), timeout=self.command_timeout,
            )
        except subprocess.TimeoutExpired:
            raise ContainerError(
                f"cannot log in to registry {server}: '{self.name} login' did not answer "
                f"within {self.command_timeout:g} s"
            ) from None
        except OSError as exc:
            raise ContainerError(f"cannot log in to registry {server}: cannot run "
                                 f"{self.binary!r}: {exc}") from None
        if result.returncode != 0:
            reason = _last_line(result.stderr).replace(secret, "***") or (
                f"exit status {result.returncode}")
            raise ContainerError(
                f"cannot log in to registry {server} as {username}: {self.name} login: {reason}"
            )

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run ``spec`` with ``<engine> run`` attached and return its exit code and output."""
        return self._run(spec)

    def _run(self, spec: ContainerSpec, extra: Sequence[str] = ()) -> ContainerResult:
        problem = env_problem(spec.env)
        if problem:
            raise ContainerError(problem)
        with tempfile.TemporaryDirectory(prefix="tes-cid-") as tmp:  # 0700, this user's
            cidfile = Path(tmp) / "cid"
            env_file = write_env_file(Path(tmp) / "env", spec.env) if spec.env else None
            args = self.build_run_args(spec, extra, env_file)
            argv = [self.binary, args[0], "--cidfile", str(cidfile), *args[1:]]

            def remember(proc: subprocess.Popen[bytes]) -> None:
                with self._lock:
                    self._active[spec.name] = proc

            try:
                captured = run_captured(
                    argv,
                    stdin_path=spec.stdin_path,
                    stdout_path=spec.stdout_path,
                    stderr_path=spec.stderr_path,
                    env=self._env(),
                    on_start=remember,
                )
            finally:
                with self._lock:
                    self._active.pop(spec.name, None)

            code = captured.returncode
            if code in _ENGINE_FAILURE_CODES:
                cid = cidfile.read_text().strip() if cidfile.exists() else ""
                if not cid or not self._started(cid):
                    if cid:  # created but never started: nothing to attach to later
                        with contextlib.suppress(ContainerError):
                            self._cli(["rm", "-f", "-v", cid])
                    message = engine_message(captured.stderr_tail)
                    if not cid and _NAME_IN_USE.search(captured.stderr_tail):
                        # Names are the executor's own (task, attempt, index): a worker
                        # that was handing over started it after our recovery looked.
                        # It runs (or ran) once; wait for it rather than fail the task.
                        attached = self.attach(
                            spec.name, stdout_path=spec.stdout_path,
                            stderr_path=spec.stderr_path,
                        )
                        if attached is not None:
                            return attached
                    if cid and command_failure(code, message, spec.command):
                        return command_not_started(
                            code, message, captured.start_time, captured.end_time,
                            spec.stderr_path,
                        )
                    self._known_images.discard(spec.image)
                    raise ContainerError(
                        f"{self.name} could not start container {spec.name!r}: "
                        f"{message or f'exit code {code}'}"
                    )
        return captured.result()

    def attach(
        self,
        name: str,
        *,
        stdout_path: OutputTarget | None = None,
        stderr_path: OutputTarget | None = None,
    ) -> ContainerResult | None:
        """Wait for the existing container ``name`` and return its result from the engine.

        Its output comes from ``logs`` (and is also written to ``stdout_path`` /
        ``stderr_path`` when given). Returns ``None`` if there is no such
        container or it was created but never started.
        """
        state = self._inspect_state(name)
        if state is None:
            return None
        if (
            state.get("Status") == "created"
            and parse_engine_time(str(state.get("StartedAt", ""))) is None
        ):
            return None
        waited = self._cli(["wait", name], timeout=None)
        if waited.returncode != 0:
            if _NOT_FOUND.search(waited.stderr):
                return None
            raise ContainerError(f"{self.name} wait {name!r} failed: {_last_line(waited.stderr)}")
        state = self._inspect_state(name)
        if state is None:
            return None
        logs = run_captured(
            [self.binary, "logs", name],
            stdout_path=stdout_path,
            stderr_path=stderr_path,
            env=self._env(),
        )
        started = parse_engine_time(str(state.get("StartedAt", ""))) or logs.start_time
        finished = parse_engine_time(str(state.get("FinishedAt", ""))) or logs.start_time
        return ContainerResult(
            exit_code=int(state.get("ExitCode", -1)),
            start_time=started,
            end_time=finished,
            stdout_tail=logs.stdout_tail,
            stderr_tail=logs.stderr_tail,
        )

    def stop(self, name: str) -> None:
        """Kill container ``name``; quiet if it is gone or already finished.

        If this runtime is running ``name`` right now but the engine has not
        started the container yet, keeps trying until it has (or the run ends).
        """
        deadline = time.monotonic() + self.stop_retry_seconds
        while True:
            result = self._cli(["kill", name])
            if result.returncode == 0:
                return
            if not (_NOT_FOUND.search(result.stderr) or _NOT_RUNNING.search(result.stderr)):
                raise ContainerError(
                    f"{self.name} kill {name!r} failed: {_last_line(result.stderr)}"
                )
            with self._lock:
                proc = self._active.get(name)
            if proc is None or proc.poll() is not None or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def remove(self, name: str) -> None:
        """Remove container ``name``, its logs and anonymous volumes; quiet if it is gone."""
        result = self._cli(["rm", "-f", "-v", name])
        if result.returncode != 0 and not _NOT_FOUND.search(result.stderr):
            raise ContainerError(f"{self.name} rm -f {name!r} failed: {_last_line(result.stderr)}")

    def remove_soon(self, name: str) -> None:
        """Remove container ``name`` in a background thread within about a second, in one
        ``rm`` with the others queued meanwhile (a slot frees without waiting for it)."""
        self._reaper.add(name)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for the removals :meth:`remove_soon` queued."""
        return self._reaper.flush(timeout)

    def _remove_many(self, names: list[str]) -> None:
        result = self._cli(["rm", "-f", "-v", *self.rm_options, *names])
        if result.returncode == 0:
            return
        problems = [line.strip() for line in result.stderr.splitlines()
                    if line.strip() and not _NOT_FOUND.search(line)]
        if problems:
            log.warning("%s rm -f of %d finished containers: %s", self.name, len(names),
                        "; ".join(problems[:5]))
