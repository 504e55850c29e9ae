"""Whether Slurm answers where the backend runs its commands, for ``/readyz``.

One probe (``squeue`` of the login user's running jobs, which needs the controller, and
``sbatch`` found on the PATH), over SSH when the commands run on a login node. Its answer
is reused for :data:`RECHECK` seconds, so probes every second cost one command per five
seconds; a probe that is under way is not waited for (the last answer is given), and a
controller that does not answer costs at most :data:`PROBE_TIMEOUT` seconds.
"""

from __future__ import annotations

import threading
import time

from .shell import SlurmCommandError, SlurmShell

RECHECK = 5.0
"""Seconds an answer of the probe is reused."""
PROBE_TIMEOUT = 5.0
"""Seconds the probe may take (Slurm's own commands retry an absent controller ~10 s)."""


def probe_command(user: str) -> str:
    """The probe's command line: fails when ``squeue`` cannot reach the controller, or
    ``sbatch`` is not on the PATH."""
    return (
        f"squeue -h -u {user} -t R -o %i >/dev/null && "
        "{ command -v sbatch >/dev/null || { echo 'sbatch: not found on the PATH' >&2; "
        "exit 127; }; }"
    )


class SlurmHealth:
    """Remembers whether the last probe of Slurm worked, and probes again when it is old."""

    def __init__(self, shell: SlurmShell, user: str, recheck: float = RECHECK) -> None:
        self.shell = shell
        self.user = user
        self.recheck = recheck
        self._reason: str | None = None
        self._checked: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    def unready_reason(self) -> str | None:
        """Why Slurm cannot take jobs now (``None``: it answers)."""
        with self._lock:
            fresh = self._checked is not None and time.monotonic() - self._checked < self.recheck
            if fresh or (self._probing and self._checked is not None):
                return self._reason
            self._probing = True
        try:
            reason = self._probe()
        finally:
            with self._lock:
                self._probing = False
        with self._lock:
            self._reason, self._checked = reason, time.monotonic()
        return reason

    def _probe(self) -> str | None:
        try:
            self.shell.run(probe_command(self.user))
        except SlurmCommandError as exc:
            return f"Slurm does not answer on {self.shell.where()}: {exc}"
        return None
