"""bubblewrap: executors run in a ``bwrap`` sandbox built on this machine's own files.

No image can be pulled, so the sandbox's root is an empty tmpfs with the host's
program folders (``/usr``, ``/bin``, ``/lib*``, ``/sbin``) and a short list of
``/etc`` entries programs need (:data:`ETC_ENTRIES`; not ``shadow``, keys or the
server's own configuration) bound read-only; the task's mounts, a private
``/proc``, ``/dev`` and ``/tmp`` are added, and every namespace but the user one is
unshared (no network unless the spec asks for one). The image name is ignored.

Who the executor is:

* Server running as root: ``bwrap`` sets the sandbox up as root (it must reach the
  task's folder, which may sit below folders only root can enter), keeping only the
  capabilities to change user; ``setpriv`` then makes the executor the unprivileged
  host user ``sandbox_uid``/``sandbox_gid`` (65534 by default) with no capabilities,
  an empty bounding set, no supplementary groups and ``no_new_privs``, before it
  runs; a seccomp filter refuses it new user namespaces (:mod:`._seccomp`). So it
  can neither remount nor write anything the host does not let that user write, and
  reads only world-readable files. The task's writable folders are handed to that
  user before each executor (:func:`give_tree`).
* Any other user: ``bwrap`` runs as that user in a new user namespace with every
  capability dropped and no further user namespaces allowed.

:meth:`BubblewrapRuntime.verify` runs the exact hardened invocation once and refuses
the runtime when the sandboxed process would keep a capability or be host root.

Each executor's process count is bounded by ``RLIMIT_NPROC`` of its user (counted
per host uid, so executors running at once as one sandbox uid share the bound).
Executor ``env`` reaches ``bwrap`` through ``--args`` on a private file descriptor,
never its command line (``ps`` shows command lines to every local user).

bubblewrap cannot limit CPU or memory: :attr:`BubblewrapRuntime.limits_note`
says so, and :meth:`BubblewrapRuntime.prepare_image` returns it as a log line.
A sandbox dies with its parent, so :meth:`attach` cannot re-attach (``None``).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ._capture import run_captured
from ._foreground import ForegroundProcesses
from ._seccomp import no_userns_filter
from .base import (
    COMMAND_NOT_EXECUTABLE,
    COMMAND_NOT_FOUND,
    DEFAULT_PIDS_LIMIT,
    SANDBOX_ID,
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    Mount,
    RuntimeOptions,
    checked_image,
    command_not_started,
    env_problem,
)

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin")
"""Host program folders bound read-only into every sandbox (those that exist here)."""

ETC_ENTRIES = (
    "passwd", "group", "hosts", "host.conf", "resolv.conf", "nsswitch.conf", "gai.conf",
    "services", "protocols", "networks", "ld.so.cache", "ld.so.conf", "ld.so.conf.d",
    "ssl/certs", "ca-certificates", "ca-certificates.conf", "pki/tls/certs",
    "pki/ca-trust", "crypto-policies", "alternatives", "localtime", "timezone",
    "mime.types", "magic", "os-release", "lsb-release", "debian_version", "profile",
    "profile.d", "bash.bashrc", "inputrc", "terminfo", "shells", "locale.alias", "fonts",
    "R", "perl", "python3", "java-17-openjdk", "java-21-openjdk",
)
"""``/etc`` entries bound read-only when they exist: what programs read to run (users
and groups by name, name resolution, the dynamic linker, CA certificates, Debian's
alternatives, time zone, shells, language runtimes). Everything else in ``/etc``
(``shadow``, ``ssl/private``, ``ssh``, ``sudoers``, service credentials) stays out;
``/etc/mtab`` is a link to ``/proc/self/mounts``."""

PRIVATE_TMP = "/tmp"
"""The sandbox's own writable ``/tmp`` (a tmpfs, world-writable and sticky)."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

WRAPPER_NAME = "tes-sandbox"
"""``$0`` of the shell that starts every executor's command (``exec "$@"``; for a root
server it also sets the environment): its own failure to start the command
(``tes-sandbox: 1: exec: foo: not found``) is told from the command's by this name."""


class BubblewrapRuntime(ContainerRuntime):
    """Runs executors with ``bwrap`` on the host's files; no image, no CPU/memory limits."""

    name = "bubblewrap"
    limits_note = (
        "bubblewrap cannot apply cpu_cores or ram_gb: executors share this machine's "
        "CPUs and memory"
    )

    def __init__(
        self,
        binary: str | None = None,
        root: str = "/",
        *,
        sandbox_uid: int = SANDBOX_ID,
        sandbox_gid: int = SANDBOX_ID,
        pids_limit: int = DEFAULT_PIDS_LIMIT,
    ) -> None:
        self.binary = binary or shutil.which("bwrap") or "bwrap"
        self.root = Path(root)
        """Host folder whose system folders are bound (``/`` normally)."""
        self.as_root = os.geteuid() == 0
        """Whether this server is root: executors then run as ``sandbox_uid``."""
        self.sandbox_uid = sandbox_uid
        self.sandbox_gid = sandbox_gid
        self.pids_limit = max(0, pids_limit)
        self.setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        self.seccomp = no_userns_filter() if self.as_root else None
        """Filter refusing new user namespaces (see :mod:`._seccomp`); a non-root server's
        sandbox gets ``--disable-userns`` instead."""
        self._processes = ForegroundProcesses()
        self._verified: str | None = None
        """``"ok"`` once :meth:`verify` passed; else why it failed (checked once)."""

    @classmethod
    def from_options(cls, options: RuntimeOptions) -> BubblewrapRuntime:
        """This runtime with the sandbox user and process limit of ``options``."""
        return cls(
            sandbox_uid=options.sandbox_uid,
            sandbox_gid=options.sandbox_gid,
            pids_limit=options.pids_limit,
        )

    @classmethod
    def probe(cls) -> str | None:
        """``None`` when ``bwrap`` is installed and the hardened sandbox works here."""
        if shutil.which("bwrap") is None:
            return "bwrap is not installed (apt-get install bubblewrap)"
        return cls().verify()

    def health(self) -> str | None:
        """``None`` while ``bwrap`` is still installed (the sandbox was verified at start)."""
        if not os.access(self.binary, os.X_OK):
            return f"{self.binary} is gone or not executable (apt-get install bubblewrap)"
        return None

    def verify(self) -> str | None:
        """Run the hardened sandbox once; ``None`` if its process is unprivileged, else why not.

        Refuses when the sandboxed process would keep any capability, be able to gain
        privileges, or be the host's root user. Checked once per runtime.
        """
        if self._verified is None:
            self._verified = self._check() or "ok"
        return None if self._verified == "ok" else self._verified

    def _check(self) -> str | None:
        if self.as_root and (self.sandbox_uid == 0 or self.sandbox_gid == 0):
            return (
                "TES_LOCAL_SANDBOX_ID/GID must not be 0: executors would run as root; "
                "choose an unused unprivileged id such as 65534"
            )
        if self.as_root and not os.access(self.setpriv, os.X_OK):
            return "setpriv is not installed (apt-get install util-linux)"
        cat = shutil.which("cat") or "/bin/cat"
        spec = ContainerSpec(
            name="tes-bwrap-probe",
            image="bubblewrap",
            command=[cat, "/proc/self/status", "/proc/self/uid_map"],
        )
        try:
            with _sandbox_files(spec.env, self.seccomp, env_after_setpriv=self.as_root) as files:
                result = subprocess.run(
                    self.build_args(spec, files),
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=10,
                    env={"PATH": DEFAULT_PATH},
                    pass_fds=files.fds,
                )
        except (OSError, subprocess.TimeoutExpired, ContainerError) as exc:
            return f"bwrap could not be run: {exc}"
        if result.returncode != 0:
            reason = result.stderr.strip() or f"exit code {result.returncode}"
            return f"bwrap cannot create a hardened sandbox here: {reason}"
        problem = _privilege_problem(result.stdout, self.as_root)
        if problem:
            return f"refusing bubblewrap: the sandboxed process {problem}"
        return None

    def prepare_image(
        self, image: str, on_pull: Callable[[], None] | None = None
    ) -> list[str]:
        """Nothing to pull (``on_pull`` is never called); returns the log line that says so.

        That limits do not apply is said by the runner, for tasks that ask for any.
        """
        checked_image(image)
        return [
            f"bubblewrap runs executors on this machine's own files; image '{image}' was not pulled"
        ]

    def build_args(self, spec: ContainerSpec, files: SandboxFiles) -> list[str]:
        """The full ``bwrap`` command line that runs ``spec``.

        ``files`` are the memory files holding the environment (see
        :func:`_sandbox_files`), so no env value is on the command line.
        """
        args = [self.binary, "--args", str(files.args), "--tmpfs", "/"]
        for folder in SYSTEM_DIRS:
            host = self.root / folder.lstrip("/")
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), folder]
            elif host.is_dir():
                args += ["--ro-bind", str(host), folder]
        # bwrap makes missing parents of a mount point 0700: make those on the sandbox's
        # own tmpfs readable, so the executor's user can reach what is mounted below.
        etc = [e for e in ETC_ENTRIES if (self.root / "etc" / e).exists()]
        points = ["/etc/mtab", *(f"/etc/{e}" for e in etc)]
        points += [m.container_path for m in spec.mounts]
        parents = _tmpfs_parents(points, spec.mounts)
        below_tmp = [f for f in parents if f.startswith(PRIVATE_TMP + "/")]
        for folder in parents:
            if folder not in below_tmp:
                args += ["--perms", "0755", "--dir", folder]
        for entry in etc:
            args += ["--ro-bind", str(self.root / "etc" / entry), f"/etc/{entry}"]
        args += ["--symlink", "../proc/self/mounts", "/etc/mtab"]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", PRIVATE_TMP]
        # The private /tmp hides what was made before it: the parents below it come now
        # (an input at /tmp/<folder>/<name>, as Toil mounts its file job store).
        for folder in below_tmp:
            args += ["--perms", "0755", "--dir", folder]
        # Parents before children, so a child's mount point is made inside its parent.
        for mount in sorted(spec.mounts, key=lambda m: len(PurePosixPath(m.container_path).parts)):
            if not mount.host_path.exists():
                raise ContainerError(f"mount source {mount.host_path} does not exist")
            option = "--ro-bind" if mount.read_only else "--bind"
            args += [option, str(mount.host_path), mount.container_path]
        command = list(spec.command)
        in_mount = bool(spec.workdir) and _under_mount(spec.workdir or "", spec.mounts)
        if self.as_root:
            # setpriv runs with capabilities: it must not see the executor's environment
            # (LD_PRELOAD and the like would run the task's code with them), so the
            # environment is set by a shell it starts once they are dropped.
            script = f". /proc/self/fd/{files.env_script} || exit 126; "
            if spec.workdir and in_mount:
                # Made by the executor's own user (bwrap, as root, would make it root's).
                script += 'mkdir -p -- "$1" && cd -- "$1" && shift && '
                command = [spec.workdir, *command]
        else:
            script = ""
        # The shell execs the command and, if it cannot, says so as WRAPPER_NAME with the
        # exit codes POSIX gives it: 127 not found, 126 not executable (bwrap's own execvp
        # would exit 1, like its set-up failures).
        command = ["/bin/sh", "-c", script + 'exec "$@"', WRAPPER_NAME, *command]
        if spec.workdir and not (self.as_root and in_mount):
            # Made like Docker does; a folder that already exists is left as it is. On the
            # sandbox's own tmpfs it must be writable by the executor's user.
            if not in_mount:
                args += ["--perms", "0777"]
            args += ["--dir", spec.workdir, "--chdir", spec.workdir]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not spec.network or spec.network == "none":
            args.append("--unshare-net")
        if self.as_root:
            # setpriv needs these three to become the sandbox user; it then drops them all.
            args += ["--cap-drop", "ALL"]
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                args += ["--cap-add", cap]
            args += ["--die-with-parent", "--new-session", "--", self.setpriv,
                     f"--reuid={self.sandbox_uid}", f"--regid={self.sandbox_gid}",
                     "--clear-groups", "--inh-caps=-all", "--ambient-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--", *command]
        else:
            args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL",
                     "--die-with-parent", "--new-session", "--", *command]
        return args

    def run(self, spec: ContainerSpec) -> ContainerResult:
        """Run ``spec`` in a sandbox in its own process group until it exits."""
        checked_image(spec.image)
        problem = env_problem(spec.env)
        if problem:
            raise ContainerError(problem)
        if self.as_root:
            odd = next((n for n in spec.env if not _SHELL_NAME.fullmatch(n)), None)
            if odd is not None:
                raise ContainerError(
                    f"executor env name {odd[:100]!r} cannot be set by bubblewrap, which sets "
                    "the environment through /bin/sh: use letters, digits and '_' only"
                )
        self._ensure_verified()
        if self._processes.running(spec.name):
            raise ContainerError(f"a sandbox called {spec.name!r} is already running")
        if self.as_root:
            give_tree(
                (m.host_path for m in spec.mounts if not m.read_only),
                self.sandbox_uid, self.sandbox_gid,
            )

        with (
            _sandbox_files(spec.env, self.seccomp, env_after_setpriv=self.as_root) as files,
            self._processes.tracking(spec.name) as remember,
        ):
            captured = run_captured(
                self.build_args(spec, files),
                stdin_path=spec.stdin_path,
                stdout_path=spec.stdout_path,
                stderr_path=spec.stderr_path,
                env={"PATH": DEFAULT_PATH},
                new_session=True,
                on_start=remember,
                popen_options=self._popen_options(files.fds),
            )
        # bwrap reports its own failures (a mount) as "bwrap: ..." with exit code 1; the
        # wrapper shell a command it cannot start with 127 or 126, before the command
        # could write anything.
        stderr = captured.stderr_tail
        if captured.returncode == 1 and stderr.startswith("bwrap: "):
            raise ContainerError(
                f"bubblewrap could not run {spec.command[0]!r}: {captured.stderr_tail.strip()}"
            )
        if captured.returncode in (COMMAND_NOT_EXECUTABLE, COMMAND_NOT_FOUND) and (
            stderr.startswith(f"{WRAPPER_NAME}: ")
        ):
            return command_not_started(
                captured.returncode, stderr, captured.start_time, captured.end_time,
                spec.stderr_path,
            )
        return captured.result()

    def _ensure_verified(self) -> None:
        """Raise :class:`ContainerError` unless the hardened sandbox works (see :meth:`verify`)."""
        problem = self.verify()
        if problem:
            raise ContainerError(problem)

    def _popen_options(self, fds: tuple[int, ...]) -> dict[str, Any]:
        options: dict[str, Any] = {"pass_fds": fds}
        if self.pids_limit:
            limit = self.pids_limit

            def bound_processes() -> None:  # in the child, before exec; C calls only
                resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))

            options["preexec_fn"] = bound_processes
        return options

    def stop(self, name: str) -> None:
        """Kill the process group of sandbox ``name``; quiet if it is not running."""
        self._processes.stop(name)

    def remove(self, name: str) -> None:
        """A sandbox leaves nothing behind once stopped; stops it if it still runs."""
        self.stop(name)


@dataclass(frozen=True)
class SandboxFiles:
    """The memory files one ``bwrap`` run reads (all in :attr:`fds`, to pass to it)."""

    args: int
    """``bwrap --args``: options setting the environment (and loading the seccomp filter)."""
    env_script: int | None
    """A shell script exporting the executor's environment, sourced after ``setpriv``."""
    fds: tuple[int, ...]


@contextlib.contextmanager
def _sandbox_files(
    env: Mapping[str, str], seccomp: bytes | None, *, env_after_setpriv: bool
) -> Iterator[SandboxFiles]:
    """Memory files carrying exactly the executor's environment to the sandbox.

    The ``--args`` file is NUL-separated, so any value round-trips, newlines and ``=``
    included; with ``env_after_setpriv`` it sets only ``PATH`` and ``HOME``, and the
    executor's variables go to a script of single-quoted ``export`` lines instead, which
    the sandbox's shell sources once ``setpriv`` dropped every privilege. Memory files,
    so nothing of the environment shows in ``ps``.
    """
    base = {"PATH": DEFAULT_PATH, "HOME": "/tmp"}
    full = {**base, **env}
    options = ["--clearenv"]
    for key, value in (base if env_after_setpriv else full).items():
        options += ["--setenv", key, value]
    fds: list[int] = []
    try:
        script = None
        if env_after_setpriv:
            lines = "".join(f"export {k}={_shell_quote(v)}\n" for k, v in full.items())
            script = _memfd("tes-bwrap-env", lines.encode())
            fds.append(script)
        if seccomp is not None:
            fds.append(_memfd("tes-bwrap-seccomp", seccomp))
            options += ["--seccomp", str(fds[-1])]
        args = _memfd("tes-bwrap-args", b"".join(o.encode() + b"\0" for o in options))
        fds.insert(0, args)
        yield SandboxFiles(args=args, env_script=script, fds=tuple(fds))
    finally:
        for fd in fds:
            os.close(fd)


def _shell_quote(value: str) -> str:
    """``value`` as one single-quoted word of ``/bin/sh`` (any character but NUL)."""
    return "'" + value.replace("'", "'\\''") + "'"


def _memfd(name: str, data: bytes) -> int:
    """A memory file holding ``data``, read from its start (not inheritable)."""
    fd = os.memfd_create(name, 0)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _tmpfs_parents(paths: Iterable[str], mounts: Iterable[Mount]) -> list[str]:
    """The parent folders of ``paths`` that are not in any of ``mounts``, parents first."""
    mounts = list(mounts)
    folders: dict[str, None] = {}
    for path in paths:
        for parent in reversed(PurePosixPath(path).parents):
            folder = str(parent)
            if folder != "/" and not _under_mount(folder, mounts):
                folders[folder] = None
    return sorted(folders, key=lambda f: len(PurePosixPath(f).parts))


def _under_mount(path: str, mounts: Iterable[Mount]) -> bool:
    return any(
        path == m.container_path or path.startswith(m.container_path.rstrip("/") + "/")
        for m in mounts
    )


def give_tree(roots: Iterable[Path], uid: int, gid: int) -> None:
    """Make every folder and unshared file under ``roots`` owned by ``uid``/``gid``.

    Never follows a symlink (walks by directory file descriptor). Files with more
    than one hard link are left alone: they may be shared with something else (a
    cache entry) that the sandbox user must not be able to change. Folders under an
    already given root are walked once.
    """
    done: list[Path] = []
    for root in sorted({Path(r) for r in roots}, key=lambda p: len(p.parts)):
        if any(root.is_relative_to(d) for d in done):
            continue
        done.append(root)
        try:
            top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # a file mount or a missing one: bwrap says what is wrong
        try:
            _give(top, uid, gid)
        finally:
            os.close(top)


def _give(top: int, uid: int, gid: int) -> None:
    st = os.fstat(top)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(top, uid, gid)
    for _, dirs, files, dir_fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
        for name in (*dirs, *files):
            try:
                st = os.lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            if (st.st_uid, st.st_gid) == (uid, gid) or stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                continue
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def _privilege_problem(status: str, server_is_root: bool) -> str | None:
    """What is privileged about the process whose ``/proc/self/status`` and ``uid_map``
    are ``status``; ``None`` when it has no capability and no way to gain one, and (for
    a root server) runs as a non-root host user outside any user namespace.

    A server that is not root cannot give the sandbox the host's root user, whatever
    its user namespaces map (a nested one hides the host's ids from the inside).
    """
    fields = dict(
        line.split(":", 1) for line in status.splitlines() if ":" in line and "\t" in line
    )
    for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb", "CapInh"):
        value = fields.get(cap, "").strip()
        if not value or int(value, 16) != 0:
            return f"would keep capabilities ({cap} {value or 'unknown'})"
    if fields.get("NoNewPrivs", "").strip() != "1":
        return "could gain privileges (no_new_privs is off)"
    if not server_is_root:
        return None
    maps = [line.split() for line in status.splitlines() if line[:1] == " " or line[:1].isdigit()]
    if maps != [["0", "0", "4294967295"]]:
        return "runs in a user namespace made by root (its ids could map to the host's root)"
    uids = fields.get("Uid", "").split()
    if not uids or "0" in uids:
        return "would be the host's root user"
    return None
