"""``tes-aks-coordinator``: runs one TES task attempt on Kubernetes, from inside its pod.

The server creates this program's Job with the plan (the task, its placement, volume
and image settings) in its ``TES_AKS_PLAN`` variable. The program then

1. writes the task ConfigMap (the TES document the staging Jobs mount) and creates the
   task's volume (a PVC sized from ``disk_gb``),
2. runs ``tes-filetransfer download`` as a Job to stage the inputs into it,
3. runs one Job per executor, in order, waiting for each; a non-zero exit stops the task
   unless the executor has ``ignore_error``,
4. runs ``tes-filetransfer upload`` as a Job and reads the output file logs from its pod's
   log,
5. deletes the Jobs and the volume it made,

and keeps the attempt's status document (the vocabulary of ``tes-runner``'s
``status.json``, plus ``waiting``: why a pod of the attempt waits, or ``null``) in the
status ConfigMap, where the server reads it. The state is INITIALIZING until the first
executor's container runs (QUEUED while a pod of the attempt waits for a node the
scheduler cannot find), then RUNNING. It exits 0 once a
final state is recorded, 1 when it could not record one. SIGTERM (the server's cancel
deletes this Job) stops it between two calls: it deletes what it made, records nothing
more, and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from tes_runner.events import COMPLETE, EXECUTOR_ERROR, INITIALIZING, RUNNING, SYSTEM_ERROR
from tes_runner.run import rfc3339
from tes_runner.status import empty_log

from . import manifests, names, podstate
from .kube import Kube, KubeError, api_client
from .manifests import PLAN_ENV

log = logging.getLogger("tes_aks.coordinator")

QUEUED = "QUEUED"
"""The state of the status document while a pod waits for a node before the first
executor ran (the scheduler said Unschedulable)."""
PREEMPTED = "PREEMPTED"
"""A final state of the status document only the coordinator writes: a pod of the
attempt was evicted (the server starts a new attempt or ends the task PREEMPTED)."""
FINAL = frozenset({COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, PREEMPTED})
TAIL = manifests.TAIL_BYTES
EXECUTOR = manifests.EXECUTOR_CONTAINER
SETTLE = 10
"""Seconds the ``stderr`` container of an executor pod may take to end after the
executor."""


class Cancelled(Exception):
    """SIGTERM: the server's cancel deleted this Job. Nothing more is recorded (the status
    ConfigMap is the server's to delete); what the coordinator made is deleted."""


class Stop(Exception):
    """The attempt ends now with ``state`` and ``reason`` in its system logs."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class Coordinator:
    """Runs the attempt described by ``plan`` (see :mod:`tes_aks.plan`)."""

    def __init__(
        self,
        kube: Kube,
        plan: dict[str, Any],
        sleep: Callable[[float], None] = time.sleep,
        settle: float = SETTLE,
    ) -> None:
        self.kube = kube
        self.settle = settle
        self.watch_timeout = float(plan.get("watch_timeout", 30))
        self.plan = plan
        self.namespace = plan["namespace"]
        self.sleep = sleep
        self.stopping = False
        self.document: dict[str, Any] = {
            "state": QUEUED,
            "final": False,
            "updated": None,
            "attempt": 0,
            "waiting": None,
            "log": empty_log(),
        }
        self._status_created = False
        self._made: list[tuple[str, str]] = []

    # -- the run ---------------------------------------------------------------------

    def run(self) -> int:
        """Run the attempt to a final state; the exit status (0: a final state recorded)."""
        self.document["attempt"] = self.plan["attempt"]
        existing = self.kube.get("ConfigMap", self.namespace, self._status_name())
        if existing is not None:
            self._status_created = True
            previous = json.loads((existing.get("data") or {}).get(manifests.STATUS_KEY) or "{}")
            if previous.get("final"):
                log.info("attempt already ended %s; nothing to do", previous.get("state"))
                return 0
        try:
            self._steps()
        except Cancelled:
            log.info("stopped (SIGTERM): the task was cancelled; deleting what it made")
            self._clean_up()
            return 0
        except Stop as stop:
            self._end(stop.state, stop.reason)
        except KubeError as exc:
            self._end(SYSTEM_ERROR, f"the coordinator could not go on: {exc}")
        self._clean_up()
        return 0 if self.document["final"] else 1

    def _steps(self) -> None:
        task = self.plan["task"]
        self._update(
            INITIALIZING,
            start_time=rfc3339(datetime.now(UTC)),
            metadata={"namespace": self.namespace, "coordinator": self.plan["base"]},
        )
        self.kube.create(manifests.task_config_map(self.plan))  # the server deletes it
        self._create(manifests.volume_claim(self.plan))
        if task.get("inputs"):
            self._transfer(names.STAGE_IN)
        for index, executor in enumerate(task["executors"]):
            exit_code = self._executor(index, executor)
            if exit_code != 0 and not executor.get("ignore_error"):
                raise Stop(
                    EXECUTOR_ERROR,
                    f"executor {index} ({executor['image']}) exited with code {exit_code}",
                )
        outputs = self._transfer(names.STAGE_OUT) if task.get("outputs") else []
        self.document["log"]["outputs"] = outputs
        self._end(COMPLETE, None)

    def _executor(self, index: int, executor: dict[str, Any]) -> int:
        job = self._create(manifests.executor_job(self.plan, index))
        # Its log entry is added once it ended (the core reads an entry as an ended
        # executor's: its stored tails, no longer the live output).
        entry: dict[str, Any] = {
            "start_time": rfc3339(datetime.now(UTC)),
            "end_time": None,
            "exit_code": 0,
            "stdout": "",
            "stderr": "",
        }
        what = f"executor {index}"
        pod, ended = self._wait(job, what, started=self._running, container=EXECUTOR)
        capture = True
        no_shell = podstate.cannot_start(pod, EXECUTOR, "/bin/sh")
        if no_shell and not any(executor.get(k) for k in ("stdin", "stdout", "stderr")):
            # The wrapper that keeps stderr apart needs /bin/sh; the executor never ran.
            self.document["log"]["system_logs"].append(
                f"{what} ({executor['image']}) has no /bin/sh ({no_shell}); it ran again "
                "without the wrapper that keeps stderr apart: its stdout log holds both "
                "streams"
            )
            self.kube.delete("Job", self.namespace, job["metadata"]["name"])
            job = self._create(manifests.executor_job(self.plan, index, capture=False))
            pod, ended = self._wait(job, what, started=self._running, container=EXECUTOR)
            capture = False
        elif no_shell:
            self.document["log"]["system_logs"].append(
                f"{what} ({executor['image']}) could not start: {no_shell}; its stdin, stdout "
                "and stderr files need /bin/sh in the image"
            )
            capture = False  # nothing ran: no stderr to wait for
        if ended.started:
            entry["start_time"] = rfc3339(ended.started)
        entry["end_time"] = rfc3339(ended.finished or datetime.now(UTC))
        entry["exit_code"] = ended.exit_code
        name = pod["metadata"]["name"]
        entry["stdout"] = self.kube.pod_log(self.namespace, name, TAIL, container=EXECUTOR)
        if capture:
            settled = self._settle(job, manifests.STDERR_CONTAINER)
            entry["stderr"] = self.kube.pod_log(
                self.namespace, name, TAIL, container=manifests.STDERR_CONTAINER
            )
            if not settled:  # its stderr container waits for a mark that never comes
                self.kube.delete("Job", self.namespace, job["metadata"]["name"])
        if ended.oom_killed:
            self.document["log"]["system_logs"].append(
                f"executor {index} ({executor['image']}) was killed: out of memory "
                f"(OOMKilled, exit code {ended.exit_code}); ask for more with "
                "resources.ram_gb"
            )
        self.document["log"]["logs"].append(entry)
        self._write()
        return ended.exit_code

    def _settle(self, job: dict[str, Any], container: str) -> bool:
        """Give ``container`` of the Job's pod up to ``settle`` seconds to end (the
        ``stderr`` container ends once it copied everything; an executor killed before its
        wrapper marked its end leaves it running, and its log is read as it is); whether
        it ended."""
        name = job["metadata"]["name"]
        deadline = time.monotonic() + self.settle
        for pods in self._pod_changes(name, lambda: deadline - time.monotonic()):
            if self.stopping:
                raise Cancelled()
            if not pods or any(podstate.terminated(pod, container) for pod in pods):
                return True
            if time.monotonic() >= deadline:
                break
        log.warning(
            "container %s of Job %s did not end within %s s; reading its log as it is",
            container,
            name,
            self.settle,
        )
        return False

    def _transfer(self, role: str) -> list[dict[str, Any]]:
        what = "staging the inputs" if role == names.STAGE_IN else "uploading the outputs"
        job = self._create(manifests.transfer_job(self.plan, role))
        pod, ended = self._wait(job, what)
        text = self.kube.pod_log(
            self.namespace, pod["metadata"]["name"], None if role == names.STAGE_OUT else TAIL
        )
        if ended.exit_code != 0:
            raise Stop(
                SYSTEM_ERROR,
                f"{what} failed (exit code {ended.exit_code}): "
                f"{text.strip()[-2000:] or ended.message or '(no log)'}",
            )
        return output_logs(text) if role == names.STAGE_OUT else []

    def _running(self) -> None:
        if self.document["state"] != RUNNING:
            self._update(RUNNING)

    def _queued(self, waits_for_node: bool) -> None:
        """QUEUED while a pod waits for a node before the first executor ran (back to
        INITIALIZING once it has one); once RUNNING the state stays (TES has no way back)."""
        state = self.document["state"]
        if waits_for_node and state == INITIALIZING:
            self._update(QUEUED)
        elif not waits_for_node and state == QUEUED:
            self._update(INITIALIZING)

    def _waiting(self, reason: str | None) -> None:
        if self.document.get("waiting") != reason:
            self.document["waiting"] = reason
            self._write()

    def _wait(
        self,
        job: dict[str, Any],
        what: str,
        started: Callable[[], None] | None = None,
        container: str | None = None,
    ) -> tuple[dict[str, Any], Any]:
        """Wait until ``container`` (else the first) of the Job's pod ends; ``(pod,
        Termination)``. While it waits for a node or an image, the status document's
        ``waiting`` says so; ``started`` is called once the pod runs. Raises :class:`Stop`
        for an image that cannot be pulled in time and an evicted pod."""
        name = job["metadata"]["name"]
        try:
            return self._wait_loop(name, what, started, container)
        finally:
            self._waiting(None)
            self._queued(False)

    def _wait_loop(
        self, name: str, what: str, started: Callable[[], None] | None, container: str | None
    ) -> tuple[dict[str, Any], Any]:
        pull_left: list[float] = []  # seconds left to an image that cannot be pulled yet

        def within() -> float:
            return min([self.watch_timeout, *pull_left])

        for pods in self._pod_changes(name, within):
            if self.stopping:
                raise Cancelled()
            pull_left.clear()
            self._queued(any(podstate.unschedulable(pod) for pod in pods))
            for pod in pods:
                reason = podstate.evicted(pod)
                if reason:
                    raise Stop(
                        PREEMPTED,
                        f"{what}: pod {pod['metadata']['name']} was taken off its node ({reason})",
                    )
                phase = (pod.get("status") or {}).get("phase")
                if started is not None and phase in ("Running", "Succeeded", "Failed"):
                    self._waiting(None)
                    started()
                ended = podstate.terminated(pod, container)
                if ended is not None:
                    return pod, ended
                failure = podstate.pull_failure(pod)
                if failure is not None:
                    since = failure.since or datetime.now(UTC)
                    waited = (datetime.now(UTC) - since).total_seconds()
                    limit = float(self.plan.get("image_pull_wait", 300))
                    if waited >= limit:
                        raise Stop(
                            SYSTEM_ERROR,
                            f"{what}: {failure.describe()}; gave up after {int(waited)} s",
                        )
                    pull_left.append(limit - waited)
                    self._waiting(f"{what}: {failure.describe()}")
                pending = podstate.unschedulable(pod)
                if pending:
                    self._waiting(f"{what} waits for a node: {pending}")
        raise AssertionError("the pod changes never end")  # pragma: no cover

    def _pod_changes(
        self, name: str, within: Callable[[], float]
    ) -> Iterator[list[dict[str, Any]]]:
        """The pods of Job ``name`` now, then again after each change the API reports (a
        watch from the list's ``resourceVersion``) and at least every ``within()``
        seconds. A watch that expired (410 Gone: its version was compacted away) or broke
        is followed by a list and a new watch. :class:`Stop` once the Job is gone."""
        selector = f"job-name={name}"
        while True:
            items, version = self.kube.list_versioned("Pod", self.namespace, selector)
            pods = {pod["metadata"]["name"]: pod for pod in items}
            try:
                while True:
                    self._job_left(name)
                    yield list(pods.values())
                    for kind, obj in self.kube.watch(
                        "Pod", self.namespace, selector, version, max(1, math.ceil(within()))
                    ):
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            pods.pop(obj["metadata"]["name"], None)
                            self._job_left(name)
                        else:
                            pods[obj["metadata"]["name"]] = obj
                        yield list(pods.values())
            except KubeError as exc:
                if exc.status == 410:
                    log.info("the watch of Job %s's pods expired (%s); listing again", name, exc)
                else:
                    log.warning("the watch of Job %s's pods broke (%s); listing again", name, exc)
                    self.sleep(float(self.plan.get("poll_interval", 2)))

    def _job_left(self, name: str) -> None:
        """:class:`Stop` if the Job ``name`` no longer exists (deleted outside TES)."""
        if self.kube.get("Job", self.namespace, name) is None:
            raise Stop(SYSTEM_ERROR, f"the Job {name} was deleted outside TES")

    # -- objects and status --------------------------------------------------------

    def _create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        obj, created = self.kube.create(manifest)
        self._made.append((manifest["kind"], manifest["metadata"]["name"]))
        log.info(
            "%s %s %s",
            "created" if created else "adopted",
            manifest["kind"],
            manifest["metadata"]["name"],
        )
        return obj

    def _clean_up(self) -> None:
        for kind, name in reversed(self._made):
            try:
                self.kube.delete(kind, self.namespace, name)
            except KubeError as exc:  # the server's clean-up deletes by label later
                log.warning("could not delete %s %s: %s", kind, name, exc)

    def _status_name(self) -> str:
        return names.object_name(self.plan["base"], names.STATUS)

    def _update(self, state: str | None = None, **fields: Any) -> None:
        log_ = self.document["log"]
        for key, value in fields.items():
            if key == "metadata":
                log_["metadata"] = {**log_.get("metadata", {}), **value}
            else:
                log_[key] = value
        if state is not None:
            self.document["state"] = state
            self.document["final"] = state in FINAL
        self._write()

    def _end(self, state: str, reason: str | None) -> None:
        if reason:
            self.document["log"]["system_logs"].append(reason)
        self._update(state, end_time=rfc3339(datetime.now(UTC)))

    def _write(self) -> None:
        if self.stopping:
            raise Cancelled()
        self.document["updated"] = rfc3339(datetime.now(UTC))
        body = manifests.status_config_map(self.plan, self.document)
        if not self._status_created:
            self.kube.create(body)
            self._status_created = True
            return
        self.kube.patch("ConfigMap", self.namespace, self._status_name(), {"data": body["data"]})


def output_logs(text: str) -> list[dict[str, Any]]:
    """The ``OutputFileLog`` list ``tes-filetransfer upload`` printed last in ``text``."""
    found = text.rfind("\n[")
    start = found + 1 if found >= 0 else (0 if text.startswith("[") else -1)
    try:
        if start < 0:
            raise ValueError("no JSON list")
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        raise Stop(
            SYSTEM_ERROR, f"the upload printed no list of uploaded files: {text.strip()[-500:]!r}"
        ) from None
    if not isinstance(value, list):
        raise Stop(SYSTEM_ERROR, "the upload printed no list of uploaded files")
    return value


def main(argv: list[str] | None = None) -> int:
    """The ``tes-aks-coordinator`` command."""
    parser = argparse.ArgumentParser(
        prog="tes-aks-coordinator", description="Run one TES task attempt on Kubernetes."
    )
    parser.add_argument(
        "--plan-env",
        default=PLAN_ENV,
        help=f"the variable holding the plan as JSON (default {PLAN_ENV})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s tes-aks-coordinator %(levelname)s %(message)s",
    )
    try:
        kube = Kube(api_client())
    except KubeError as exc:
        print(f"tes-aks-coordinator: {exc}", file=sys.stderr)
        return 1
    try:
        plan = json.loads(os.environ[args.plan_env])
    except (KeyError, ValueError) as exc:
        print(f"tes-aks-coordinator: no plan in ${args.plan_env}: {exc!r}", file=sys.stderr)
        return 2
    coordinator = Coordinator(kube, plan)

    def stop(signum: int, frame: Any) -> None:
        coordinator.stopping = True

    signal.signal(signal.SIGTERM, stop)
    return coordinator.run()


if __name__ == "__main__":
    sys.exit(main())
