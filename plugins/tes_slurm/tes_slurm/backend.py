"""The ``slurm`` backend: each TES task attempt is one Slurm batch job.

* :meth:`SlurmBackend.submit` writes the task folder (``task.json``, the batch script)
  and submits the script, or, when the script was there already, finds the job an
  earlier submit of the same attempt made (the job's name carries the task id and
  attempt), in one command.
* :meth:`SlurmBackend.poll` learns the state of every active job with at most two
  commands per reconcile pass (:mod:`tes_slurm.snapshot`) and turns each job's state
  and the runner's ``status.json`` into an observation (:mod:`tes_slurm.observe`).
* :meth:`SlurmBackend.cancel` cancels the task's jobs, waits for them to leave their
  node, and removes the task folder.

Commands run on this machine or over SSH on a login node (``TES_SLURM_SSH``).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tes_core.backends.base import (
    Backend,
    BackendContext,
    BackendError,
    Observation,
    OutputPiece,
    TaskRecord,
)
from tes_core.backends.live_output import read_live_output
from tes_core.backends.runner_status import task_file as runner_task_file
from tes_core.config import ConfigError
from tes_core.shutdown import Deadline
from tes_core.storage_policy import access_policy
from tes_filetransfer import TransferError

from . import jobscript
from .health import PROBE_TIMEOUT, SlurmHealth
from .observe import from_folder, observe
from .parse import WAITING, JobInfo, parse_sbatch
from .settings import SlurmSettings
from .shell import SlurmCommandError, SlurmShell
from .snapshot import Snapshots
from .taskdir import TASK_FILE, TaskFolder
from .watch import FOLLOW_FOR, StatusWatch

log = logging.getLogger(__name__)

USER = '"$(id -un)"'
"""The login user, as the remote shell sees it (``--me`` is missing before Slurm 20.11)."""


CLEAN_ENV = (
    'env -i PATH="$PATH" HOME="$HOME" USER="$(id -un)" ${SLURM_CONF:+SLURM_CONF="$SLURM_CONF"}'
)
"""sbatch runs in a clean environment, which the job inherits: the server's own variables
(secrets among them) never reach a job. ``--export=NONE`` would also keep them out, but
makes Slurm rebuild the user's login environment on the node, seconds per job."""


class SlurmBackend(Backend):
    """Runs each task as a Slurm batch job that runs ``tes-runner`` on a node."""

    name = "slurm"
    runs_in_worker = False
    backend_parameters = jobscript.PARAMETERS

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.conf = SlurmSettings.from_settings(self.settings)
        checked = {"partition": "partition", "account": "account", "qos": "qos",
                   "time_limit": "time_limit", "preemptible_partition": "partition",
                   "preemptible_qos": "qos"}
        for field, kind in checked.items():
            value = getattr(self.conf, field)
            if value:
                try:
                    jobscript.check_parameter(kind, value)
                except ValueError as exc:
                    raise ConfigError(f"TES_SLURM_{field.upper()}: {exc}") from None
        try:
            self._policy = access_policy(self.settings)
        except TransferError as exc:
            raise ConfigError(str(exc)) from None
        self.shell = SlurmShell(self.conf.ssh, self.conf.command_timeout)
        self.snapshots = Snapshots(
            self.shell, user=USER, ttl=max(1.0, self.settings.reconcile_interval / 2)
        )
        self.health = SlurmHealth(
            SlurmShell(self.conf.ssh, min(self.conf.command_timeout, PROBE_TIMEOUT)), USER
        )
        interval = self.conf.status_watch
        self.watch = StatusWatch(
            self.folder, self._refresh_now, interval or 1.0,
            keep_for=FOLLOW_FOR * max(self.settings.reconcile_interval, interval),
        ) if interval > 0 else None

    # -- set-up -------------------------------------------------------------------------

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """Check partition, account, qos, time_limit, constraint and gres."""
        jobscript.validate(parameters)

    def storage(self) -> list[str]:
        """Inputs and outputs the nodes may reach: the allowed local folders."""
        return [f"file://{folder}" for folder in self._policy.local_dirs]

    def start(self) -> None:
        """Make the shared root and check that Slurm answers where the commands run."""
        self.conf.workdir.mkdir(parents=True, exist_ok=True)
        if self.conf.ssh and self.conf.ssh.control_dir:
            Path(self.conf.ssh.control_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._version = self.shell.run("sbatch --version").stdout.strip()
        except SlurmCommandError as exc:
            raise ConfigError(f"Slurm is not usable from here: {exc}") from None
        if self.watch is not None:
            self.watch.start()

    def shutdown(self, deadline: Deadline) -> None:
        """Stop the status watch (jobs run on; the next worker follows them)."""
        if self.watch is not None:
            self.watch.stop(timeout=deadline.remaining())

    def _refresh_now(self, task_id: str) -> None:
        """Have the core report a task whose runner recorded its end (see :mod:`.watch`)."""
        if self.context.refresh is not None:
            self.context.refresh(task_id)

    def unready_reason(self) -> str | None:
        """Why no job can be submitted now: Slurm does not answer where its commands run
        (``squeue`` fails or hangs, ``sbatch`` is missing); checked at most every 5 s."""
        return self.health.unready_reason()

    def describe(self) -> str | None:
        """Which Slurm, where its commands run, the runtime and the task folders."""
        return (
            f"{getattr(self, '_version', 'slurm')} on {self.shell.where()}, "
            f"runtime {self.conf.runtime}, task folders in {self.conf.workdir}"
        )

    # -- tasks --------------------------------------------------------------------------

    def folder(self, task_id: str) -> TaskFolder:
        """The task's folder under the shared root."""
        return TaskFolder(self.conf.workdir, task_id)

    def submit(self, task: TaskRecord) -> str:
        """Submit the task's job, or find the one an earlier call submitted."""
        attempt = max(1, len(task.logs))
        return self.submit_attempt(task, attempt)

    def submit_attempt(self, task: TaskRecord, attempt: int) -> str:
        """Write ``task.json`` and the script of ``attempt``, then find-or-submit its job."""
        task = self.dispatched(task)  # fresh SAS tokens for each attempt
        folder = self.folder(task.id)
        name = jobscript.job_name(self.conf.job_prefix, task.id, attempt)
        try:
            options = jobscript.sbatch_options(
                task.document,
                {"partition": self.conf.partition, "account": self.conf.account,
                 "qos": self.conf.qos, "time_limit": self.conf.time_limit},
                {"partition": self.conf.preemptible_partition,
                 "qos": self.conf.preemptible_qos},
            )
        except ValueError as exc:
            raise BackendError(f"backend_parameters.{exc}") from None
        script = folder.script(attempt)
        first = not script.exists()  # no submit of this attempt got as far as sbatch
        if first:
            folder.clear_status()
        folder.write_json(TASK_FILE, self.task_file(task, attempt))
        folder.write_text(script.name, jobscript.render(
            task_id=task.id, attempt=attempt, name=name, folder=str(folder.path),
            options=options, runner=self.conf.runner, prologue=self.conf.prologue,
        ))
        q = shlex.quote
        submit = f"{CLEAN_ENV} sbatch --parsable {q(str(script))}"
        # The script is written before sbatch runs: without one, no earlier submit of
        # this attempt reached Slurm, and the lookup (a squeue, 50 to 150 ms) is skipped.
        command = submit if first else (
            f"id=$(squeue -h -u {USER} -t all -n {q(name)} -o %i | head -n 1); "
            f'if [ -n "$id" ]; then echo "$id"; else {submit}; fi'
        )
        try:
            job_id = parse_sbatch(self.shell.run(command).stdout)
        except (SlurmCommandError, ValueError) as exc:
            raise BackendError(f"Slurm did not take the job: {exc}") from None
        log.info("task %s: attempt %d is Slurm job %s", task.id, attempt, job_id)
        if self.watch is not None:
            self.watch.follow(task.id)
        return job_id

    def task_file(self, task: TaskRecord, attempt: int) -> dict[str, Any]:
        """The runner's ``task.json`` (see the runner contract)."""
        return runner_task_file(task, attempt, self.conf.runtime, self._policy.portable(),
                                self.settings.output_live_max)

    def read_output(
        self, task: TaskRecord, index: int, stream: str, limit: int, offset: int | None = None
    ) -> OutputPiece:
        """From the live copy the runner keeps in the task's shared folder (``work/logs``),
        read beneath it without following links, as the local backend does."""
        workspace = self.folder(task.id).workspace()
        return read_live_output(workspace, task, index, stream, limit, offset)

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        """Observations of many tasks from one snapshot of Slurm's jobs."""
        refs = {task.backend_ref for task in tasks if _is_job(task.backend_ref)}
        snapshot = self.snapshots.get(refs)
        observations = []
        for task in tasks:
            if not _is_job(task.backend_ref):
                continue
            lookup = snapshot.lookup(task.backend_ref)
            try:
                observation = observe(
                    task, lookup, self.folder(task.id),
                    resubmit=self._resubmitter(task), max_attempts=self.conf.max_attempts,
                )
            except Exception as exc:  # one bad task must not stop the others
                log.warning("task %s: could not observe its job: %r", task.id, exc)
                continue
            self._watch(task, lookup.job)
            if observation is not None:
                if observation.state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR",
                                         "PREEMPTED"):
                    self.snapshots.forget(task.backend_ref)
                    if self.watch is not None:
                        self.watch.drop(task.id)
                observations.append(observation)
        return observations

    def _watch(self, task: TaskRecord, job: JobInfo | None) -> None:
        """Follow the task's status file while its job may run (not while it waits)."""
        if self.watch is None:
            return
        if task.state == "CANCELING" or (job is not None and job.state in WAITING):
            self.watch.drop(task.id)
        else:
            self.watch.follow(task.id)

    def refresh(self, task: TaskRecord) -> Observation | None:
        """A look at the runner's status file only (no Slurm command), for ``GET``."""
        if not _is_job(task.backend_ref):
            return None
        return from_folder(task, self.folder(task.id))

    def _resubmitter(self, task: TaskRecord) -> Callable[[int], str]:
        def resubmit(attempt: int) -> str:
            return self.submit_attempt(task, attempt)

        return resubmit

    def cancel(self, task: TaskRecord) -> bool:
        """``scancel`` every job of the task, wait until none holds a node, remove the
        folder."""
        prefix = f"{self.conf.job_prefix}{task.id}-a"
        wait = int(self.conf.cancel_wait * 2)
        command = (
            f"ids=$(squeue -h -u {USER} -o '%i %j' | "
            f"awk -v p={shlex.quote(prefix)} 'index($2, p) == 1 {{print $1}}'); "
            '[ -z "$ids" ] && exit 0; scancel $ids; '
            f"for i in $(seq {wait}); do "
            "left=$(squeue -h -j \"$(echo $ids | tr ' ' ,)\" -t R,CG,CF,S,SO,SI -o %i "
            "2>/dev/null); "
            '[ -z "$left" ] && exit 0; sleep 0.5; done; '
            'echo "still on their node: $left" >&2; exit 3'
        )
        try:
            self.shell.run(command)
        except SlurmCommandError as exc:
            raise BackendError(f"could not cancel the task's Slurm job: {exc}") from None
        if _is_job(task.backend_ref):
            self.snapshots.forget(task.backend_ref)
        if self.watch is not None:
            self.watch.drop(task.id)
        self.folder(task.id).remove()
        return True

    def remove(self, task: TaskRecord) -> None:
        """Delete the finished task's folder (retention)."""
        self.folder(task.id).remove()


def _is_job(ref: str | None) -> bool:
    return bool(ref) and ref.split("_", 1)[0].isdigit()  # type: ignore[union-attr]
