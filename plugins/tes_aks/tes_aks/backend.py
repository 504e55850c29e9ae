"""The ``aks`` backend: each TES task attempt is a coordinator Job on Kubernetes.

* :meth:`AksBackend.submit` creates the attempt's coordinator Job, the plan in its
  environment, named from the task id and attempt; a repeated submit finds it (409
  AlreadyExists: the existing Job is adopted).
* :meth:`AksBackend.poll` lists the coordinator Jobs, the pods and the status
  ConfigMaps of every task with one list call per kind and namespace, by label selector,
  and maps each attempt to an observation (:mod:`tes_aks.observe`).
* :meth:`AksBackend.cancel` deletes the coordinator Job (foreground propagation), then
  every Job, PVC and ConfigMap labelled with the task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tes_core.backends.base import (
    Backend,
    BackendContext,
    BackendError,
    NoLiveOutput,
    Observation,
    OutputPiece,
    TaskRecord,
)
from tes_core.backends.base import failed as failed_observation
from tes_core.config import ConfigError
from tes_core.storage_policy import access_policy
from tes_filetransfer import TransferError

from . import manifests, names, observe, params
from .kube import Kube, KubeError, api_client
from .plan import build_plan
from .settings import AksSettings

log = logging.getLogger(__name__)

_TRANSIENT = frozenset({0, 408, 429, 500, 502, 503, 504})
"""API answers after which a submit is tried again instead of failing the task."""
_KINDS_BY_SELECTOR = (("Job", names.COORDINATOR), ("Pod", None), ("ConfigMap", names.STATUS))


class AksBackend(Backend):
    """Runs each task as a coordinator Job that runs the task's Jobs on Kubernetes."""

    name = "aks"
    runs_in_worker = False
    backend_parameters = params.PARAMETERS

    def __init__(self, context: BackendContext, kube: Kube | None = None) -> None:
        super().__init__(context)
        self.conf = AksSettings.from_settings(self.settings)
        for setting in ("preemptible_node_selector", "preemptible_toleration"):
            try:
                if setting.endswith("selector"):
                    params.parse_selector(getattr(self.conf, setting), setting)
                else:
                    params.parse_toleration(getattr(self.conf, setting))
            except ValueError as exc:
                raise ConfigError(f"TES_AKS_{setting.upper()}: {exc}") from None
        try:
            self._policy = access_policy(self.settings)
        except TransferError as exc:
            raise ConfigError(str(exc)) from None
        self._kube = kube

    @property
    def kube(self) -> Kube:
        """The API client, made on first use (kubeconfig or in-cluster)."""
        if self._kube is None:
            try:
                self._kube = Kube(
                    api_client(self.conf.kubeconfig, self.conf.context), self.conf.request_timeout
                )
            except KubeError as exc:
                raise ConfigError(str(exc)) from None
        return self._kube

    # -- set-up -------------------------------------------------------------------------

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """Check namespace, node_selector, service_account and gpu."""
        params.validate(parameters, self.conf)

    def storage(self) -> list[str]:
        """Hosts the staging Jobs may reach (``TES_FT_ALLOWED_HOSTS``)."""
        return [f"https://{rule}" for rule in self._policy.portable()["hosts"]]

    def start(self) -> None:
        """Check that the API answers in the configured namespace."""
        try:
            self.kube.list("Job", self.conf.namespace, names.task_selector(), limit=1)
        except KubeError as exc:
            raise ConfigError(f"the Kubernetes API is not usable from here: {exc}") from None

    def describe(self) -> str | None:
        """Where the tasks run."""
        return (
            f"Kubernetes namespace {self.conf.namespace} (coordinator image "
            f"{self.conf.coordinator_image})"
        )

    # -- tasks --------------------------------------------------------------------------

    def submit(self, task: TaskRecord) -> str:
        """Create the attempt's coordinator Job, or adopt the one there."""
        ref = _ref(task.backend_ref)
        return self.submit_attempt(task, names.attempt_of(ref[1]) if ref else 1)

    def submit_attempt(self, task: TaskRecord, attempt: int) -> str:
        """Find-or-create the coordinator Job of ``attempt`` (its plan in its environment)."""
        task = self.dispatched(task)  # fresh SAS tokens for each attempt
        try:
            plan = build_plan(task.id, task.document, attempt, self.conf, self._policy_data())
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        try:
            job, created = self.kube.create(
                manifests.coordinator_job(
                    plan, self.conf.coordinator_image, self.conf.coordinator_service_account
                )
            )
        except KubeError as exc:
            if exc.status not in _TRANSIENT:
                raise BackendError(f"Kubernetes refused the task: {exc}") from None
            # Unreachable or overloaded: the task keeps its name and waits; the next
            # reconcile pass that reaches the API creates what is missing.
            log.warning(
                "task %s: the Kubernetes API did not take attempt %d yet (%s); "
                "the next pass tries again",
                task.id,
                attempt,
                exc,
            )
            return f"{plan['namespace']}/{plan['base']}"
        log.info(
            "task %s: attempt %d is Job %s/%s (%s)",
            task.id,
            attempt,
            plan["namespace"],
            plan["base"],
            "created" if created else "adopted",
        )
        return f"{plan['namespace']}/{plan['base']}"

    def _policy_data(self) -> dict[str, Any]:
        return self._policy.portable()

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        """Observations of many tasks from one list per resource kind and namespace."""
        # A CANCELING task is the cancel's: its objects are going, on purpose.
        mine = [t for t in tasks if _ref(t.backend_ref) and t.state != "CANCELING"]
        observations: list[Observation] = []
        for namespace in sorted({_ref(t.backend_ref)[0] for t in mine}):  # type: ignore[index]
            try:
                seen = self._snapshot(namespace)
            except KubeError as exc:
                log.warning(
                    "namespace %s: could not list the tasks' objects (tasks wait): %s",
                    namespace,
                    exc,
                )
                continue
            for task in mine:
                ns, base = _ref(task.backend_ref)  # type: ignore[misc]
                if ns != namespace:
                    continue
                try:
                    observation = self._observe(task, seen.get(base, observe.Attempt()))
                except Exception as exc:  # one bad task must not stop the others
                    log.warning("task %s: could not observe it: %r", task.id, exc)
                    continue
                if observation is not None:
                    observations.append(observation)
        return observations

    def _snapshot(self, namespace: str) -> dict[str, observe.Attempt]:
        lists = []
        for kind, role in _KINDS_BY_SELECTOR:
            selector = names.task_selector() + (f",{names.ROLE}={role}" if role else "")
            lists.append(self.kube.list(kind, namespace, selector))
        return observe.index(*lists)

    def _observe(self, task: TaskRecord, seen: observe.Attempt) -> Observation | None:
        namespace, base = _ref(task.backend_ref)  # type: ignore[misc]

        def coordinator_log(pod: str) -> str:
            return self.kube.pod_log(namespace, pod)

        def preempt(reason: str) -> Observation:
            return self._preempted(task, reason)

        if seen.job is None and seen.status is None and task.state == "QUEUED":
            self.submit_attempt(task, names.attempt_of(base))  # a submit the API missed
            return None
        observation = observe.observe(
            task,
            seen,
            image_pull_wait=self.conf.image_pull_wait,
            preempt=preempt,
            coordinator_log=coordinator_log,
        )
        if observation is not None and observation.state in (
            "SYSTEM_ERROR",
            "COMPLETE",
            "EXECUTOR_ERROR",
            "PREEMPTED",
        ):
            self._delete_attempt(namespace, base)
        return observation

    def _preempted(self, task: TaskRecord, reason: str) -> Observation:
        namespace, base = _ref(task.backend_ref)  # type: ignore[misc]
        attempt = names.attempt_of(base)
        self._delete_attempt(namespace, base)
        if attempt < self.conf.max_attempts:
            new_ref = self.submit_attempt(task, attempt + 1)
            return Observation(
                task_id=task.id,
                new_attempt=True,
                backend_ref=new_ref,
                system_logs=[
                    f"attempt {attempt} was preempted: {reason}; "
                    f"attempt {attempt + 1} is Job {new_ref}"
                ],
            )
        observation = failed_observation(
            task.id,
            f"attempt {attempt} was preempted: {reason}; no attempt is left "
            f"(TES_AKS_MAX_ATTEMPTS={self.conf.max_attempts})",
        )
        observation.state = "PREEMPTED"
        return observation

    def _delete_attempt(self, namespace: str, base: str) -> None:
        """Delete the attempt's coordinator Job and task ConfigMap (the status ConfigMap
        stays until the task is removed or cancelled)."""
        try:
            self.kube.delete("Job", namespace, base)
            self.kube.delete("ConfigMap", namespace, names.object_name(base, names.TASK_FILE))
        except KubeError as exc:
            log.warning("could not delete the objects of %s/%s: %s", namespace, base, exc)

    def refresh(self, task: TaskRecord) -> Observation | None:
        """One read of the attempt's status ConfigMap, for ``GET``."""
        ref = _ref(task.backend_ref)
        if ref is None:
            return None
        namespace, base = ref
        try:
            config_map = self.kube.get(
                "ConfigMap", namespace, names.object_name(base, names.STATUS)
            )
        except KubeError:
            return None
        status = observe.status_document(config_map) if config_map else None
        if status is None or status.get("state") not in ("QUEUED", "INITIALIZING", "RUNNING"):
            return None  # final states and their clean-up belong to the reconcile pass
        return observe.from_status_if_changed(task, status)

    def read_output(
        self, task: TaskRecord, index: int, stream: str, limit: int, offset: int | None = None
    ) -> OutputPiece:
        """From the log of the running executor pod's container that holds ``stream``
        (``executor``: stdout; ``stderr``: stderr; see README "Executor logs"): from byte
        ``offset`` (the log's first ``offset + limit`` bytes asked for), else its end (the
        whole log read: the API gives no last bytes)."""
        ref = _ref(task.backend_ref)
        own = (task.document.get("executors") or [{}])[index].get(stream)
        if own:
            raise NoLiveOutput(
                f"executor {index} writes its {stream} to its own file {own}; "
                "its end is shown when the executor ends"
            )
        if ref is None:
            return OutputPiece(0, b"")
        namespace, base = ref
        selector = (
            f"{names.task_selector(task.id)},{names.ATTEMPT}={names.attempt_of(base)},"
            f"{names.EXECUTOR}={index}"
        )
        try:
            pods = self.kube.list("Pod", namespace, selector)
            merged = [
                p
                for p in pods
                if (p["metadata"].get("labels") or {}).get(names.ROLE) == names.EXECUTOR_MERGED
            ]
            if merged and stream == "stderr":
                raise NoLiveOutput(
                    f"executor {index}'s image has no /bin/sh: its stderr is in its stdout"
                )
            pod = (merged or pods or [None])[0]
            if pod is None:
                return OutputPiece(0, b"")  # not started yet
            container = (
                manifests.EXECUTOR_CONTAINER if stream == "stdout" else manifests.STDERR_CONTAINER
            )
            name = pod["metadata"]["name"]
            if offset is None:
                data = self.kube.pod_log_bytes(namespace, name, container)
                return OutputPiece(max(0, len(data) - limit), data[-limit:])
            data = self.kube.pod_log_bytes(namespace, name, container, offset + limit)
        except KubeError as exc:
            raise NoLiveOutput(
                f"the Kubernetes API did not give executor {index}'s log: {exc}"
            ) from None
        first = min(offset, len(data))
        return OutputPiece(first, data[first : first + limit])

    def cancel(self, task: TaskRecord) -> bool:
        """Delete the coordinator, then everything labelled with the task."""
        self._delete_everything(task)
        return True

    def remove(self, task: TaskRecord) -> None:
        """Delete what is left of a finished task (its status ConfigMap)."""
        self._delete_everything(task)

    def _delete_everything(self, task: TaskRecord) -> None:
        namespaces = {self.conf.namespace}
        ref = _ref(task.backend_ref)
        if ref is not None:
            namespaces = {ref[0]}
            self.kube.delete("Job", ref[0], ref[1])
        selector = names.task_selector(task.id)
        try:
            for namespace in namespaces:
                for kind in ("Job", "PersistentVolumeClaim", "ConfigMap"):
                    self.kube.delete_all(kind, namespace, selector)
        except KubeError as exc:
            raise BackendError(f"could not delete the task's Kubernetes objects: {exc}") from None


def _ref(ref: str | None) -> tuple[str, str] | None:
    if not ref or "/" not in ref:
        return None
    namespace, base = ref.split("/", 1)
    return namespace, base
