"""bubblewrap: executors run in a ``bwrap`` sandbox built on this machine's own files.

No image can be pulled, so the sandbox's root is an empty tmpfs with the host's
system folders (``/usr``, ``/etc``, ...) bound read-only; the task's mounts, a
private ``/proc``, ``/dev`` and ``/tmp`` are added, and every namespace is
unshared (no network unless the spec asks for one). The image name is ignored.

bubblewrap cannot limit CPU or memory: :attr:`BubblewrapRuntime.limits_note`
says so, and :meth:`BubblewrapRuntime.prepare_image` returns it as a log line.
A sandbox dies with its parent, so :meth:`attach` cannot re-attach (``None``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path, PurePosixPath

from ._capture import run_captured
from .base import ContainerError, ContainerResult, ContainerRuntime, ContainerSpec

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin", "/etc")
"""Host folders bound read-only into every sandbox (those that exist here)."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BubblewrapRuntime(ContainerRuntime):
    """Runs executors with ``bwrap`` on the host's files; no image, no resource limits."""

    name = "bubblewrap"
    limits_note = (
        "bubblewrap cannot apply cpu_cores or ram_gb: executors share this machine's "
        "CPUs and memory"
    )

    def __init__(self, binary: str | None = None, root: str = "/") -> None:
        self.binary = binary or shutil.which("bwrap") or "bwrap"
        self.root = Path(root)
        """Host folder whose system folders are bound (``/`` normally)."""
        self._active: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when ``bwrap`` is installed and may create its namespaces here."""
        binary = shutil.which("bwrap")
        if binary is None:
            return "bwrap is not installed (apt-get install bubblewrap)"
        true = shutil.which("true") or "/bin/true"
        argv = [binary, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        argv += ["--unshare-all", "--die-with-parent", true]
        try:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap could not be run: {exc}"
        if result.returncode != 0:
            reason = result.stderr.strip() or f"exit code {result.returncode}"
            return f"bwrap cannot create a sandbox here: {reason}"
        return None

    def prepare_image(self, image: str) -> list[str]:
        """Nothing to pull; returns the log line that says so.

        That limits do not apply is said by the local backend, for tasks that ask for any.
        """
        return [
            f"bubblewrap runs executors on this machine's own files; image '{image}' was not pulled"
        ]

    def build_args(self, spec: ContainerSpec) -> list[str]:
        """The full ``bwrap`` command line that runs ``spec``."""
        args = [self.binary, "--tmpfs", "/"]
        for folder in SYSTEM_DIRS:
            host = self.root / folder.lstrip("/")
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), folder]
            elif host.is_dir():
                args += ["--ro-bind", str(host), folder]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        # Parents before children, so a child's mount point is made inside its parent.
        for mount in sorted(spec.mounts, key=lambda m: len(PurePosixPath(m.container_path).parts)):
            if not mount.host_path.exists():
                raise ContainerError(f"mount source {mount.host_path} does not exist")
            option = "--ro-bind" if mount.read_only else "--bind"
            args += [option, str(mount.host_path), mount.container_path]
        if spec.workdir:
            # Made like Docker does, also inside a bound folder (then it appears on the
            # host too); a folder that already exists is left as it is.
            args += ["--dir", spec.workdir, "--chdir", spec.workdir]
        args += ["--clearenv", "--setenv", "PATH", DEFAULT_PATH, "--setenv", "HOME", "/tmp"]
        for key, value in spec.env.items():
            args += ["--setenv", key, value]
        args += ["--unshare-all", "--die-with-parent", "--new-session"]
        if spec.network and spec.network != "none":
            args.append("--share-net")
        args += ["--", *spec.command]
        return args

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run ``spec`` in a sandbox in its own process group until it exits."""
        with self._lock:
            if spec.name in self._active:
                raise ContainerError(f"a sandbox called {spec.name!r} is already running")

        def remember(proc: subprocess.Popen[bytes]) -> None:
            with self._lock:
                self._active[spec.name] = proc

        try:
            captured = run_captured(
                self.build_args(spec),
                stdin_path=spec.stdin_path,
                stdout_path=spec.stdout_path,
                stderr_path=spec.stderr_path,
                new_session=True,
                on_start=remember,
            )
        finally:
            with self._lock:
                self._active.pop(spec.name, None)
        # bwrap reports its own failures (a mount, a missing command) as "bwrap: ..."
        # with exit code 1, before the executor ever ran.
        stderr = captured.stderr_tail
        if captured.returncode == 1 and stderr.startswith("bwrap: ") and stderr.count("\n") <= 1:
            raise ContainerError(f"bubblewrap could not start {spec.name!r}: {stderr.strip()}")
        return ContainerResult(
            exit_code=captured.returncode,
            start_time=captured.start_time,
            end_time=captured.end_time,
            stdout_tail=captured.stdout_tail,
            stderr_tail=captured.stderr_tail,
        )

    def stop(self, name: str) -> None:
        """Kill the process group of sandbox ``name``; quiet if it is not running."""
        with self._lock:
            proc = self._active.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def remove(self, name: str) -> None:
        """A sandbox leaves nothing behind once stopped; stops it if it still runs."""
        self.stop(name)
