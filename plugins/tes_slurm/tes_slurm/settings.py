"""The backend's own settings, read from ``TES_SLURM_*`` variables (see README.md)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tes_core.config import ConfigError, PluginSettings, Settings

from .shell import SshTarget

RUNTIMES = ("docker", "podman", "bubblewrap", "apptainer", "singularity")


@dataclass(frozen=True)
class SlurmSettings:
    """What the operator configured for the Slurm backend."""

    workdir: Path
    """Root of the per-task folders, on storage the server and every node share."""
    runtime: str = "docker"
    runner: str = "tes-runner"
    """The runner command on the nodes (a name on the job's PATH, or a full path)."""
    prologue: str = ""
    """Shell lines put in every job script before the runner (``module load``, PATH)."""
    partition: str = ""
    account: str = ""
    qos: str = ""
    time_limit: str = ""
    preemptible_partition: str = ""
    preemptible_qos: str = ""
    max_attempts: int = 3
    """Attempts of a task whose job Slurm preempts (the first run included)."""
    job_prefix: str = "tes-"
    command_timeout: float = 60.0
    cancel_wait: float = 30.0
    """Seconds ``cancel`` waits for the job to leave its node before removing its folder."""
    status_watch: float = 1.0
    """Seconds between two looks at the status files of running tasks (0: no looks; ends
    are then seen at the reconcile passes and on ``GET``)."""
    ssh: SshTarget | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SlurmSettings:
        """Read the ``TES_SLURM_*`` variables; raise :class:`ConfigError` naming a bad one."""

        reader = PluginSettings(settings, "slurm")
        get, number = reader.text, reader.number

        runtime = get("runtime", "docker").lower()
        if runtime not in RUNTIMES:
            raise ConfigError(
                f"TES_SLURM_RUNTIME={runtime!r} is not one of {', '.join(RUNTIMES)}"
            )
        prefix = get("job_prefix", "tes-")
        if not prefix or not prefix.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"TES_SLURM_JOB_PREFIX={prefix!r}: use letters, digits, '-' and '_'"
            )
        destination = get("ssh")
        ssh = None
        if destination:
            ssh = SshTarget(
                destination=destination,
                port=int(number("ssh_port", "22", int, 1)),
                identity_file=get("ssh_key"),
                known_hosts=get("ssh_known_hosts"),
                # A short path: a socket's path must stay under 108 bytes.
                control_dir=get("ssh_control_dir",
                                f"{tempfile.gettempdir()}/tes-slurm-ssh-{os.getuid()}"),
            )
        workdir = get("workdir") or str(settings.data_dir / "slurm")
        return cls(
            workdir=Path(workdir).absolute(),
            runtime=runtime,
            runner=get("runner", "tes-runner"),
            prologue=settings.plugin_setting("slurm_prologue", ""),
            partition=get("partition"),
            account=get("account"),
            qos=get("qos"),
            time_limit=get("time_limit"),
            preemptible_partition=get("preemptible_partition"),
            preemptible_qos=get("preemptible_qos"),
            max_attempts=int(number("max_attempts", "3", int, 1)),
            job_prefix=prefix,
            command_timeout=number("command_timeout", "60", float, 1),
            cancel_wait=number("cancel_wait", "30", float, 0),
            status_watch=number("status_watch", "1", float, 0),
            ssh=ssh,
        )
