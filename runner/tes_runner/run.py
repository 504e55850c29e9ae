"""Running one task on this machine, start to finish.

INITIALIZING (workspace, inputs, images) -> RUNNING (executors one after another) ->
outputs uploaded -> COMPLETE, EXECUTOR_ERROR or SYSTEM_ERROR. :meth:`TaskRunner.cancel`
stops the running container (or transfer); the run then cleans up and reports CANCELED.
:meth:`TaskRunner.abort` does the same but ends the task in SYSTEM_ERROR with a reason
(the machine is going away). :meth:`TaskRunner.hand_over` leaves the task to whoever runs
it next (the process is restarting): transfers stop, nothing more is reported or removed,
and a running container goes on, to be re-attached by the next run (``resume``).

Every change goes to an :class:`~tes_runner.events.Events` object; the runner itself
knows no database, server or status file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from tes_filetransfer import (
    Interrupted,
    TransferConfig,
    TransferError,
    TransferStats,
    beneath,
    stage_inputs,
    upload_outputs,
)

from .events import (
    CANCELED,
    COMPLETE,
    EXECUTOR_ERROR,
    INITIALIZING,
    RUNNING,
    SYSTEM_ERROR,
    Events,
    Update,
)
from .registry import RegistryLogin
from .runtimes.base import (
    COMMAND_NOT_FOUND,
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    OutputTarget,
    requested_gpus,
)
from .runtimes.rolling import DEFAULT_MAX_BYTES, RollingFile
from .workspace import PlantedLink, Workspace, file_mounts, output_name, plan_mounts

log = logging.getLogger(__name__)

STOP_REPEAT_SECONDS = 0.5
"""How often a cancel stops the running executor again until its run returns."""


class Cancelled(Exception):
    """The task was cancelled (or aborted) while it ran."""


class Abandoned(Exception):
    """The task's state moved on without this run (e.g. recovered elsewhere); stop quietly."""


class HandedOver(Exception):
    """The run was handed over (:meth:`TaskRunner.hand_over`); stop quietly, touch nothing."""


class TaskFailure(RuntimeError):
    """An infrastructure failure with a message fit for the task's system logs."""


def machine_cpus() -> int:
    """CPUs this process may use (what a container's CPU limit can be at most)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def container_name(task_id: str, index: int, attempt: int | None = None) -> str:
    """The container name of executor ``index`` of a task (stable, so any process can stop
    it or re-attach to it): ``tes-<task>-<index>``, or ``tes-<task>-<attempt>-<index>``."""
    if attempt is None:
        return f"tes-{task_id}-{index}"
    return f"tes-{task_id}-{attempt}-{index}"


@dataclass
class Resume:
    """Where a run picks up a task whose previous run died (its process, its machine)."""

    state: str
    """The task's state when that run died: ``QUEUED``, ``INITIALIZING`` or ``RUNNING``."""
    executor_logs: list[dict[str, Any]] = field(default_factory=list)
    """The executors that finished then (their ``ExecutorLog`` objects, in order)."""

    @property
    def running(self) -> bool:
        """Whether executors had started: inputs are staged, the next one may be running."""
        return self.state in (RUNNING, "PAUSED")


class TaskRunner:
    """One task's run; :meth:`run` blocks until the task is finished.

    ``resume`` picks up after a run that died: an executor container that had started is
    waited for (never started twice). ``attempt`` goes into the container names
    (:func:`container_name`). ``keep_workspace`` leaves the task's folder after the run.
    ``who`` names what runs the task in its system logs ("the local backend").
    ``live_output_max`` caps the live copy of each executor output stream the task names no
    file for (:class:`~tes_runner.runtimes.rolling.RollingFile`); a file it names gets
    every byte.
    """

    def __init__(
        self,
        task_id: str,
        document: dict[str, Any],
        *,
        runtime: ContainerRuntime,
        workspace: Workspace,
        events: Events,
        transfer_config: TransferConfig,
        network: str | None = "none",
        live_output_max: int = DEFAULT_MAX_BYTES,
        resume: Resume | None = None,
        attempt: int | None = None,
        keep_workspace: bool = False,
        who: str = "tes-runner",
        registry: RegistryLogin | None = None,
    ) -> None:
        self.task_id = task_id
        self.document = document
        self.runtime = runtime
        self.workspace = workspace
        self.events = events
        self.transfer_config = transfer_config
        self.network = network
        self.live_output_max = live_output_max
        self.resume = resume
        self.attempt = attempt
        self.keep_workspace = keep_workspace
        self.who = who
        self.registry = registry
        """Logs the engine in to a private registry before pulling one of its images."""
        self.cancelled = threading.Event()
        self.interrupt = threading.Event()
        """Stops the run's transfers at once (set by a cancel, an abort or a hand-over)."""
        self.handed_over = False
        """Set by :meth:`hand_over`: the run reports and removes nothing more."""
        self.abort_reason: str | None = None
        self.current_container: str | None = None
        self._executor_returned = threading.Event()
        """Set while no executor runs: ends a cancel's repeated stops."""
        self._stopper_lock = threading.Lock()
        self._stopper_for: str | None = None
        """The executor a cancel's thread of repeated stops is for."""
        self.executor_logs: list[dict[str, Any]] = []
        self._cleaned = False
        self._ended = False
        """Set once the task's end was recorded: nobody looks at its containers again."""

    # -- control from other threads -------------------------------------------------

    def cancel(self) -> None:
        """Stop the task now; :meth:`run` reports CANCELED once it has cleaned up."""
        self.cancelled.set()
        self.interrupt.set()
        name = self.current_container
        if name:
            self.runtime.stop(name)
            # The stop may have come while the runtime was still starting the executor,
            # before it had a process or container to stop: stop it again until it returns
            # (one such thread per executor, however often the cancel comes).
            with self._stopper_lock:
                if self._stopper_for == name:
                    return
                self._stopper_for = name
            threading.Thread(
                target=self._stop_until_returned, args=(name,), name=f"tes-runner-stop {name}",
                daemon=True,
            ).start()

    def _stop_until_returned(self, name: str) -> None:
        """Stop executor ``name`` every :data:`STOP_REPEAT_SECONDS` while it runs."""
        while not self._executor_returned.wait(STOP_REPEAT_SECONDS):
            if self.current_container != name:
                return
            try:
                self.runtime.stop(name)
            except ContainerError as exc:
                log.warning("stopping %s again failed: %s", name, exc)

    def abort(self, reason: str) -> None:
        """Stop the task now because this machine or process is going away; it ends in
        SYSTEM_ERROR with ``reason`` in its system logs."""
        self.abort_reason = reason
        self.cancel()

    def hand_over(self, reason: str) -> bool:
        """This process is stopping: leave the task to the next run, as a crash would.

        Transfers stop at once (the next run stages or uploads again, inputs from the
        cache); nothing more is reported; the task's folder and containers stay, and a
        running Docker or podman container goes on, to be re-attached. A sandbox that cannot
        outlive this process (bubblewrap) cannot be left while an executor runs in it: that
        run is aborted with ``reason`` (SYSTEM_ERROR) and this returns ``False``.
        """
        if self.current_container and not self.runtime.can_attach:
            self.abort(reason)
            return False
        self.handed_over = True
        self.interrupt.set()
        return True

    def end_unstarted(self) -> None:
        """Record CANCELED for a run cancelled before :meth:`run` began (it never ran)."""
        self._report(CANCELED, end=True)

    # -- the run --------------------------------------------------------------------

    def run(self) -> None:
        """Run the task; every outcome, failures included, ends in a reported state."""
        try:
            self._run()
        except Cancelled:
            self._cleanup()
            if self.abort_reason:
                self._report(SYSTEM_ERROR, end=True, system_logs=[self.abort_reason])
            else:
                self._report(CANCELED, end=True)
        except HandedOver:
            log.info("task %s: left to the next worker", self.task_id)
        except Abandoned:
            log.info("task %s was taken out of this run's hands; stopping", self.task_id)
        except PlantedLink as exc:  # the task's own executors did it
            log.warning("task %s: %s", self.task_id, exc)
            self._report(EXECUTOR_ERROR, end=True, system_logs=[str(exc)])
        except (TaskFailure, ContainerError) as exc:
            log.warning("task %s: %s", self.task_id, exc)
            self._report(SYSTEM_ERROR, end=True, system_logs=[str(exc)])
        except Exception as exc:  # an unexpected failure of the runner itself
            log.exception("task %s failed on this machine", self.task_id)
            reason = f"{self.who} failed: {type(exc).__name__}: {exc}"
            self._report(SYSTEM_ERROR, end=True, system_logs=[reason])
        finally:
            if not self.handed_over:
                self._cleanup(later=self._ended)

    def _run(self) -> None:
        self._check_handed_over()
        document = self.document
        resume = self.resume
        running = resume is not None and resume.running
        if running:
            # Executors that finished before the crash are in the logs.
            self.executor_logs = list(resume.executor_logs)
        if resume is None or resume.state == "QUEUED":
            self._advance(
                INITIALIZING,
                start=True,
                new_attempt=True,
                metadata={"hostname": socket.gethostname(), "runtime": self.runtime.name},
            )
        self.workspace.create()
        if not running:
            notes = self._stage_inputs(document)
            notes += self._prepare_images(document)
            notes += self._resource_notes(document)
            self._check_cancel_requested()  # a cancel makes the advance refuse
            self._advance(RUNNING, system_logs=notes)
        failed = self._run_executors(document, first=len(self.executor_logs))
        outputs, problems = self._upload_outputs(document, strict=not failed)
        if failed:
            self._report(
                EXECUTOR_ERROR, end=True, outputs=outputs, system_logs=[failed, *problems],
            )
            return
        self._check_cancel_requested()  # a cancel makes the advance refuse
        self._advance(COMPLETE, end=True, outputs=outputs)

    def _stage_inputs(self, document: dict[str, Any]) -> list[str]:
        inputs = document.get("inputs") or []
        if not inputs:
            return []
        stats = TransferStats()
        self.events.stage(lambda: _staging_reason(stats))
        try:
            lines: list[str] = []
            for root, items in _by_root(self.workspace, inputs):
                lines += stage_inputs(
                    items, self.workspace.verified_root(root),
                    config=self.transfer_config, stats=stats, interrupt=self.interrupt,
                )
            # What the node-local cache saved is observable in the task's system_logs.
            return [*lines, f"inputs staged, {stats.summary()}"]
        except Interrupted:
            raise self._stopped() from None
        except TransferError as exc:
            raise TaskFailure(f"staging inputs failed: {exc}") from exc
        finally:
            self.events.stage(None)

    def _prepare_images(self, document: dict[str, Any]) -> list[str]:
        notes: list[str] = []
        try:
            for image in dict.fromkeys(executor["image"] for executor in document["executors"]):
                self._check_cancelled()
                self.events.stage(f"preparing image '{image}'")
                logins: list[str] = []
                lines = self.runtime.prepare_image(
                    image, on_pull=partial(self._before_pull, image, logins)
                )
                notes += logins + lines
        finally:
            self.events.stage(None)
        return notes

    def _before_pull(self, image: str, notes: list[str]) -> None:
        """Right before ``image`` is pulled: say so, and log in to its registry if it is
        the private one (a failure raises :class:`ContainerError`: SYSTEM_ERROR)."""
        self.events.stage(f"pulling image '{image}'")
        if self.registry is not None:
            notes += self.registry.before_pull(image, self.runtime)

    def _resource_notes(self, document: dict[str, Any]) -> list[str]:
        resources = document.get("resources") or {}
        notes = []
        if resources.get("disk_gb"):
            notes.append(f"disk_gb is not enforced by {self.who}")
        if (resources.get("cpu_cores") or resources.get("ram_gb")) and self.runtime.limits_note:
            notes.append(self.runtime.limits_note)
        elif (resources.get("cpu_cores") or 0) > machine_cpus():
            notes.append(
                f"cpu_cores={resources['cpu_cores']} is more than this machine has; executors "
                f"are limited to its {machine_cpus()} CPUs"
            )
        gpus = requested_gpus(document)
        if gpus and not self.runtime.gpu_args:
            notes.append(
                f"backend_parameters.gpus={gpus}: the {self.runtime.name} runtime "
                "cannot give GPUs to containers; executors run without them"
            )
        return notes

    def _run_executors(self, document: dict[str, Any], first: int = 0) -> str | None:
        """Run the executors in order from ``first``; return why the task failed, or ``None``."""
        mounts = plan_mounts(document, self.workspace)
        files = file_mounts(document)
        self.workspace.prepare_mounts(mounts, files)
        resources = document.get("resources") or {}
        for index, executor in enumerate(document["executors"]):
            if index < first:
                entry = self.executor_logs[index]
                if entry.get("exit_code") and not executor.get("ignore_error"):
                    return _exit_message(index, executor, entry["exit_code"])
                continue
            self._check_cancelled()
            with contextlib.ExitStack() as opened:
                try:
                    spec = self._spec(index, executor, mounts, resources, opened)
                except PlantedLink as exc:
                    return f"executor {index} was not started: {exc}"
                self.current_container = spec.name
                self._executor_returned.clear()
                try:
                    if self.cancelled.is_set():
                        raise Cancelled
                    resuming = self.resume is not None and index == first
                    result = self._attach(spec) if resuming else None
                    if result is None:
                        try:  # right before the start: the previous executor has exited
                            self.workspace.check_mounts(mounts, files)
                        except PlantedLink as exc:
                            return f"executor {index} was not started: {exc}"
                        result = self.runtime.run(spec)
                finally:
                    self.current_container = None
                    self._executor_returned.set()
            self._check_handed_over()  # the next run re-attaches and reports it
            self._check_cancelled()
            entry: dict[str, Any] = {
                "start_time": rfc3339(result.start_time),
                "end_time": rfc3339(result.end_time),
                "exit_code": result.exit_code,
                "stdout": result.stdout_tail,
                "stderr": result.stderr_tail,
            }
            self.executor_logs.append(entry)
            self._tell(
                Update(
                    executor_logs=list(self.executor_logs),
                    system_logs=[_not_started_message(index, executor, result)]
                    if result.not_started else [],
                )
            )
            if result.exit_code != 0 and not executor.get("ignore_error"):
                return _exit_message(index, executor, result.exit_code)
        return None

    def _attach(self, spec: ContainerSpec) -> ContainerResult | None:
        """After a crash: wait for the executor's container if it had started."""
        result = self.runtime.attach(
            spec.name, stdout_path=spec.stdout_path, stderr_path=spec.stderr_path
        )
        if result is None:
            self.runtime.remove(spec.name)  # created but never started: start it afresh
        else:
            self._tell(
                Update(system_logs=[f"re-attached to executor container {spec.name} after a "
                                    "restart"])
            )
        return result

    def _spec(
        self,
        index: int,
        executor: dict[str, Any],
        mounts: list,
        resources: dict[str, Any],
        opened: contextlib.ExitStack,
    ) -> ContainerSpec:
        """The container of executor ``index``. Its stdin/stdout/stderr files are opened
        here, beneath the task folder without following links (an earlier executor may
        have planted one), and named by ``/proc/self/fd`` paths that stay valid until
        ``opened`` closes them: the runtime then opens exactly these files."""

        def pinned(path: str | None, write: bool) -> Path | None:
            if not path:
                return None
            fd = self.workspace.open_file(path, write=write)
            opened.callback(os.close, fd)
            return beneath.pinned(fd)

        def output(stream: str) -> OutputTarget:
            """The executor's own file (every byte is the task's), else a capped copy in
            the task's logs folder (whose end the server reads while it runs)."""
            own = pinned(executor.get(stream), write=True)
            if own is not None:
                return own
            fd = self.workspace.open_logs(create=True)
            opened.callback(os.close, fd)
            return RollingFile(fd, output_name(index, stream), self.live_output_max)

        stdout = output("stdout")
        stderr = output("stderr")
        try:
            stdin = pinned(executor.get("stdin"), write=False)
        except FileNotFoundError:
            raise TaskFailure(
                f"executor {index}: stdin {executor['stdin']} does not exist; list it as an input "
                "or write it in an earlier executor"
            ) from None
        return ContainerSpec(
            name=container_name(self.task_id, index, self.attempt),
            image=executor["image"],
            command=list(executor["command"]),
            mounts=mounts,
            workdir=executor.get("workdir"),
            env=dict(executor.get("env") or {}),
            stdin_path=stdin,
            stdout_path=stdout,
            stderr_path=stderr,
            cpu_cores=min(resources.get("cpu_cores") or 0, machine_cpus()) or None,
            ram_gb=resources.get("ram_gb") or None,
            labels={"org.ga4gh.tes.task": self.task_id, "org.ga4gh.tes.executor": str(index)},
            network=self.network,
            gpus=requested_gpus({"resources": resources}) > 0,
        )

    def _upload_outputs(
        self, document: dict[str, Any], *, strict: bool
    ) -> tuple[list[dict[str, str]], list[str]]:
        """Upload outputs; with ``strict`` a failure ends the task, else it is only noted."""
        logs: list[dict[str, str]] = []
        problems: list[str] = []
        for root, items in _by_root(self.workspace, document.get("outputs") or []):
            try:
                self.workspace.verified_root(root)  # resolve_in_root trusts the root itself
            except PlantedLink as exc:
                if strict:
                    raise
                problems.append(f"outputs not uploaded: {exc}")
                continue
            for item in items:
                try:
                    uploaded = upload_outputs(
                        [item], root, config=self.transfer_config, interrupt=self.interrupt
                    )
                except Interrupted:
                    raise self._stopped() from None
                except TransferError as exc:
                    if strict:
                        raise TaskFailure(f"uploading outputs failed: {exc}") from exc
                    problems.append(f"output not uploaded: {exc}")
                    continue
                logs += [_restore_path(entry, item) for entry in uploaded]
        return logs, problems

    # -- reporting, cancel checks and clean-up -----------------------------------------

    def _report(
        self,
        state: str,
        *,
        start: bool = False,
        end: bool = False,
        new_attempt: bool = False,
        outputs: list[dict[str, str]] | None = None,
        system_logs: list[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> bool:
        now = datetime.now(UTC)
        reported = self._tell(
            Update(
                state=state,
                start_time=now if start else None,
                end_time=now if end else None,
                outputs=outputs,
                system_logs=list(system_logs or []),
                metadata=metadata,
                new_attempt=new_attempt,
            )
        )
        self._ended = self._ended or (reported and end)
        return reported

    def _tell(self, update: Update) -> bool:
        """Send ``update`` to the events, unless the run was handed over (``False``)."""
        return not self.handed_over and self.events.report(update)

    def _advance(self, state: str, **details: Any) -> None:
        """Report ``state``; if it is refused, find out why and stop."""
        self._check_handed_over()
        if self._report(state, **details):
            return
        if self.events.cancel_requested():
            raise Cancelled
        raise Abandoned

    def _stopped(self) -> Exception:
        """Why a transfer was interrupted: a hand-over, else a cancel or an abort."""
        return HandedOver() if self.handed_over else Cancelled()

    def _check_handed_over(self) -> None:
        if self.handed_over:
            raise HandedOver

    def _check_cancel_requested(self) -> None:
        """Stop if this run was asked to cancel or abort (without asking the events)."""
        if self.cancelled.is_set():
            raise Cancelled

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set() or self.events.cancel_requested():
            raise Cancelled

    def _cleanup(self, later: bool = False) -> None:
        """Remove the task's containers and folder. With ``later`` (its end is recorded) the
        containers go in the background, so the caller is free at once."""
        if self._cleaned:
            return
        self._cleaned = True
        remove = self.runtime.remove_soon if later else self.runtime.remove
        for index in range(len(self.document["executors"])):
            try:
                remove(container_name(self.task_id, index, self.attempt))
            except Exception:
                log.warning("could not remove container of task %s", self.task_id, exc_info=True)
        if not self.keep_workspace:
            self.workspace.remove()


def rfc3339(value: datetime) -> str:
    """``value`` as TES writes times: UTC, milliseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _exit_message(index: int, executor: dict[str, Any], exit_code: int) -> str:
    return f"executor {index} ({executor['image']}) exited with code {exit_code}"


def _staging_reason(stats: TransferStats) -> str:
    if not stats.expected_files:
        return "staging inputs"
    return f"staging inputs: {stats.files} of {stats.expected_files} files"


def _not_started_message(index: int, executor: dict[str, Any], result: ContainerResult) -> str:
    what = "was not found" if result.exit_code == COMMAND_NOT_FOUND else "is not executable"
    return (
        f"executor {index} ({executor['image']}): its command {executor['command'][0]!r} "
        f"{what} (exit code {result.exit_code}); the engine said: "
        f"{result.stderr_tail.strip()[:500]}"
    )


def _by_root(
    workspace: Workspace, items: list[dict[str, Any]]
) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Group TES inputs/outputs by the host folder their paths live in, with inner paths."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        root, inner = workspace.locate(item["path"])
        moved = {**item, "path": inner, "_path": item["path"]}
        if item.get("path_prefix"):
            moved["path_prefix"] = workspace.locate(item["path_prefix"])[1]
        groups.setdefault(root, []).append(moved)
    return list(groups.items())


def _restore_path(entry: dict[str, str], item: dict[str, Any]) -> dict[str, str]:
    """Report output file paths as the container saw them (undo :func:`_by_root`)."""
    inner, original = item["path"], item["_path"]
    prefix = original[: len(original) - len(inner)]
    return {"url": entry["url"], "path": prefix + entry["path"], "size_bytes": entry["size_bytes"]}
