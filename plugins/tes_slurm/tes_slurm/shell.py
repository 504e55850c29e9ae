"""Running Slurm's commands: on this machine, or over SSH on a login node.

Every call is one shell command line (``sh -c`` here, the login shell over SSH), so a
caller can put a few commands in one round trip. :attr:`SlurmShell.calls` counts the
round trips, for the tests and the benchmark of the reconcile pass.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class SlurmCommandError(RuntimeError):
    """A Slurm command could not be run or failed; the message holds its stderr."""


@dataclass(frozen=True)
class SshTarget:
    """A login node reached with ``ssh`` (key login, no password prompts)."""

    destination: str
    """``user@host`` or ``host``."""
    port: int = 22
    identity_file: str = ""
    known_hosts: str = ""
    control_dir: str = ""
    """Folder for the master connection's socket, reused between calls; empty: none."""

    def argv(self) -> list[str]:
        """``ssh`` and its options, ready for the remote command line."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-p", str(self.port)]
        if self.identity_file:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}",
                     "-o", "StrictHostKeyChecking=yes"]
        if self.control_dir:
            argv += ["-o", "ControlMaster=auto", "-o",
                     f"ControlPath={Path(self.control_dir) / '%C'}",
                     "-o", "ControlPersist=60"]
        return [*argv, "--", self.destination]


class SlurmShell:
    """Runs shell command lines for the backend, locally or on a login node."""

    def __init__(self, ssh: SshTarget | None = None, timeout: float = 60.0) -> None:
        self.ssh = ssh
        self.timeout = timeout
        self.calls = 0
        self._lock = threading.Lock()

    def where(self) -> str:
        """``this machine`` or ``ssh user@host:port``, for messages."""
        return f"ssh {self.ssh.destination}:{self.ssh.port}" if self.ssh else "this machine"

    def run(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one command line; raise :class:`SlurmCommandError` when it cannot be run,
        times out, or (with ``check``) exits non-zero."""
        argv = [*self.ssh.argv(), command] if self.ssh else ["sh", "-c", command]
        with self._lock:
            self.calls += 1
        log.debug("slurm command on %s: %s", self.where(), command)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout,
                stdin=subprocess.DEVNULL, check=False,
            )
        except subprocess.TimeoutExpired:
            raise SlurmCommandError(
                f"{command.split()[0]} on {self.where()}: no answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise SlurmCommandError(f"{command.split()[0]} on {self.where()}: {exc}") from None
        if check and done.returncode != 0:
            message = (done.stderr.strip() or done.stdout.strip())[-500:]
            raise SlurmCommandError(
                f"{command.split()[0]} on {self.where()} exited {done.returncode}: {message}"
            )
        return done
