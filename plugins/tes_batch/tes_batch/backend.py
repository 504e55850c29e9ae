"""The ``batch`` backend: each TES task attempt is one Azure Batch task running
``tes-runner run`` in a shared, autoscaled pool (see README.md for the design).

* :meth:`BatchBackend.submit` picks the VM size (:mod:`tes_batch.sizing`), makes the pool
  and its job when this process has not seen them yet, and adds the attempt's Batch task
  (deterministic ids: a repeated submit finds ``TaskExists`` and adopts the task). Quota
  and capacity errors, and a Batch that does not answer, keep the task QUEUED (its
  reference starts with ``wait:``) and the next reconcile pass tries again, once per pool:
  the pool's other waiting tasks ask nothing until then.
* :meth:`BatchBackend.poll` lists each pool job's tasks and the pools once per pass
  (:mod:`tes_batch.snapshot`), reads the runner's ``status.json`` once per finished task,
  and turns it all into observations (:mod:`tes_batch.observe`); it also runs the sweep.
* :meth:`BatchBackend.cancel` terminates and deletes the Batch task.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tes_core.backends.base import (
    Backend,
    BackendContext,
    BackendError,
    NoLiveOutput,
    Observation,
    OutputPiece,
    TaskRecord,
    failed,
)
from tes_core.backends.live_output import check_no_own_file
from tes_core.backends.runner_status import RUNNER_STATES, from_status, if_changed
from tes_core.backends.runner_status import task_file as runner_task_file
from tes_core.config import ConfigError
from tes_core.shutdown import Deadline
from tes_core.storage_policy import access_policy
from tes_filetransfer import TransferError

from . import autopool, ids, pools, sharedglobal, sizing
from .client import BatchApi, BatchApiError, make_client
from .live import LiveOutput
from .observe import QUOTA_CODES, next_attempt, observe
from .prices import RetailPrices
from .quota import QuotaReader, arm_fetcher
from .settings import BatchSettings
from .snapshot import Snapshots
from .sweep import Sweeper
from .taskspec import STATUS_PATH, task_spec

log = logging.getLogger(__name__)
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
logging.getLogger("azure.batch._utils.model_base").setLevel(logging.ERROR)
"""The SDK logs every request and response at INFO, and a traceback for each 404 of a file
download (a status file not written yet); the backend logs what it did instead."""

WAIT = "wait:"
"""Prefix of the reference of an attempt Batch has not taken yet (quota, outage)."""
RETRYABLE = set(QUOTA_CODES) | {"PoolBeingDeleted", "JobBeingDeleted", "JobNotFound",
                                "PoolNotFound", "ServerBusy", "OperationTimedOut",
                                "InternalError"}
"""Batch error codes after which a submit is tried again by the next pass."""


class BatchBackend(Backend):
    """Runs each task attempt as one Azure Batch task (``tes-runner run``)."""

    name = "batch"
    runs_in_worker = False
    backend_parameters = sizing.PARAMETERS

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.conf = BatchSettings.from_settings(self.settings)
        try:
            self._policy = access_policy(self.settings)
        except TransferError as exc:
            raise ConfigError(str(exc)) from None
        self.api = BatchApi(make_client(self.conf))
        self._ready: set[str] = set()
        """Pools (and their jobs) this process made or found."""
        self.per_task = self.conf.pool_mode == "per-task"
        """An auto-pool per attempt (the seed's pool per task) instead of shared pools."""
        self.snapshots = Snapshots(
            self.api, self.conf.pool_prefix, ttl=max(1.0, self.settings.reconcile_interval / 2),
            job_prefix=ids.auto_pool_prefix(self.conf.pool_prefix) + "-" if self.per_task
            else "")
        self.sweeper = Sweeper(self.api, self.conf, context.reporter,
                               on_delete=self._ready.discard)
        self.live = LiveOutput(self.api, self.conf.output_cache)
        """Executors' live output, read from the nodes (:mod:`tes_batch.live`)."""
        self._held: dict[str, str] = {}
        """Why an attempt waits before Batch took it, by TES id."""
        self._blocked: dict[str, tuple[float, str]] = {}
        """Pools whose last submit met a quota or an outage: until when the other tasks
        of the pool wait without asking Batch again, and why."""
        self._hold = max(0.5, self.settings.reconcile_interval / 2)
        self._looked: dict[str, float] = {}
        """When :meth:`refresh` last read each task's status file."""
        self._lock = threading.Lock()
        self.prices = (RetailPrices(self.conf.prices_url, self.conf.region, self.conf.prices_ttl)
                       if self.conf.prices_url and self.conf.region else None)
        """The retail prices API, when configured and the region is known."""
        self.quotas = (QuotaReader(self.conf.account_resource_id,
                                   arm_fetcher(self.conf.arm_url, 10.0), self.conf.quota_ttl)
                       if self.conf.account_resource_id else None)
        """The account's quotas from Resource Manager, when its resource id is set."""

    # -- set-up -------------------------------------------------------------------------

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """Check ``vm_size`` (against the allowed sizes) and ``gpus``."""
        sizing.validate(parameters, self.conf.vm_sizes)

    def storage(self) -> list[str]:
        """Inputs and outputs the nodes may reach: the allowed local folders."""
        return [f"file://{folder}" for folder in self._policy.local_dirs]

    def start(self) -> None:
        """Check that the account answers and accepts the credentials (one request, not
        retried, at most 10 s: a Batch that is down now delays no start, its tasks wait)."""
        try:
            self.api.list_pools(f"{self.conf.pool_prefix}-", retry_total=0,
                                connection_timeout=10, read_timeout=10)
        except BatchApiError as exc:
            if exc.status in (401, 403):
                raise ConfigError(f"the Batch account refuses the credentials: {exc}") from None
            log.warning("the Batch account did not answer at start-up: %s", exc)

    def describe(self) -> str | None:
        """The Batch account's endpoint and how requests are signed."""
        how = "shared key" if self.conf.shared_key else "Azure AD (DefaultAzureCredential)"
        return (f"Azure Batch at {self.conf.account_url} ({how}), pools "
                f"{self.conf.pool_prefix}-*, runtime {self.conf.runtime}")

    # -- tasks --------------------------------------------------------------------------

    def submit(self, task: TaskRecord) -> str:
        """Add the attempt's Batch task (making its pool and job if needed), or adopt the
        one an earlier call added; ``wait:<ref>`` when Batch cannot take it yet."""
        attempt = max(1, len(task.logs))
        return self.submit_attempt(task, attempt)

    def submit_attempt(self, task: TaskRecord, attempt: int) -> str:
        """Submit ``attempt`` of ``task``; see :meth:`submit`."""
        task = self.dispatched(task)  # fresh SAS tokens for each attempt
        choice = self._choice(task, attempt)
        if self.quotas is not None and (never := self.quotas.never_fits(choice)):
            raise BackendError(never)
        pool = self._pool_id(choice)
        job = (ids.auto_job_id(self.conf.pool_prefix, task.id, attempt) if self.per_task
               else ids.job_id(pool))
        name = ids.task_id(task.id, attempt)
        ref = ids.ref(job, name)
        with self._lock:
            until, reason = self._blocked.get(pool, (0.0, ""))
        if time.monotonic() < until:  # another task of the pool just met it: no request
            self._held[task.id] = reason
            return WAIT + ref
        try:
            if self.per_task:  # Batch makes the job's own pool; JobExists: adopted
                spec = pools.auto_pool_job_spec(job, task.id, choice, self.conf)
                if not self.api.create_job(spec) and (task.backend_ref or "").startswith(WAIT):
                    self._clear_failed_job(job)
            else:
                self._ensure_pool(pool, job, choice)
            created = self.api.create_task(job, task_spec(name, task.id,
                                                          self.task_file(task, attempt)))
        except BatchApiError as exc:
            if exc.code in RETRYABLE or exc.status is None or exc.status >= 500:
                self._ready.discard(pool)
                reason = f"Batch did not take the task yet: {exc}" + (
                    f" ({QUOTA_CODES[exc.code]})" if exc.code in QUOTA_CODES else "")
                self._held[task.id] = reason
                with self._lock:
                    self._blocked[pool] = (time.monotonic() + self._hold, reason)
                log.warning("task %s: attempt %d waits: %s", task.id, attempt, exc)
                return WAIT + ref
            raise BackendError(f"Batch refused the task: {exc}") from None
        self._held.pop(task.id, None)
        self.snapshots.forget()
        log.info("task %s: attempt %d is Batch task %s (%s)", task.id, attempt, ref,
                 "added" if created else "adopted")
        return ref

    def _choice(self, task: TaskRecord, attempt: int | None = None) -> sizing.Choice:
        """The node of ``attempt`` (default: the current one) of ``task``."""
        attempt = attempt or max(1, len(task.logs))
        dedicated = self.conf.preempted_dedicated and attempt > 1
        try:
            return sizing.choose(task.document, self.conf.vm_sizes, dedicated=dedicated)
        except sizing.NeverFits as exc:
            raise BackendError(str(exc)) from None

    def _pool_id(self, choice: sizing.Choice) -> str:
        """The shared pool of ``choice`` (in ``per-task`` mode: the key of its waits)."""
        return ids.pool_id(self.conf.pool_prefix, choice.size.name, choice.low_priority,
                           pools.container_key(self.conf))

    def _ensure_pool(self, pool: str, job: str, choice: sizing.Choice) -> None:
        if pool in self._ready:
            return
        if self.api.create_pool(pools.pool_spec(pool, choice, self.conf)):
            log.info("created Batch pool %s (%s, low priority: %s)", pool, choice.size.name,
                     choice.low_priority)
        self.api.create_job(pools.job_spec(pool, job))
        self._ready.add(pool)

    def task_file(self, task: TaskRecord, attempt: int) -> dict[str, Any]:
        """The runner's ``task.json`` (see the runner contract)."""
        document = runner_task_file(task, attempt, self.conf.runtime, self._policy.portable(),
                                    self.settings.output_live_max)
        if self.conf.shared_global:
            document["shared_global"] = sharedglobal.RUNNER_PATH
        if self.conf.registry:
            document["registry"] = self.conf.registry.runner_entry()
        return document

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        """Observations of many tasks from one listing per pool job and one of the pools."""
        observations: list[Observation] = []
        submitted: list[tuple[TaskRecord, tuple[str, str]]] = []
        for task in tasks:
            if (task.backend_ref or "").startswith(WAIT):
                try:
                    observation = self._retry_submit(task)
                except BackendError as exc:  # e.g. the account's quota went down since
                    observation = failed(task.id, str(exc))
                if observation is not None:
                    observations.append(observation)
                continue
            parsed = ids.parse_ref(task.backend_ref)
            if parsed is not None and task.state != "CANCELING":
                submitted.append((task, parsed))
        if submitted:
            snapshot = self.snapshots.get(job for _, (job, _) in submitted)
            for task, (job, name) in submitted:
                try:
                    observation = self._observe(task, job, name, snapshot)
                except Exception as exc:  # one bad task must not stop the others
                    log.warning("task %s: could not observe Batch task %s: %r", task.id,
                                name, exc)
                    continue
                if observation is not None:
                    observations.append(observation)
        self.sweeper.maybe_sweep()
        return observations

    def _observe(self, task: TaskRecord, job: str, name: str, snapshot: Any) -> Observation | None:
        choice = self._choice(task)
        if self.per_task:
            error = autopool.scheduling_error(snapshot, job)
            if error is not None:
                return self._pool_not_made(task, job, name, error, choice)
            pool, batch_task = autopool.look(self.api, snapshot, job, name)
        else:
            pool = self._pool_id(choice)
            batch_task = snapshot.tasks.get(job, {}).get(name)
            if batch_task is None:
                batch_task = self.api.get_task(job, name)  # added after the listing?
        if batch_task is None and (made := self._made_next_attempt(task, name)) is not None:
            return made
        node = batch_task.node_info if batch_task is not None else None
        if node is not None and node.pool_id:
            pool = node.pool_id  # where it runs, whatever the size table says now
        metadata = {"batch_job_id": job, "batch_task_id": name, "batch_pool_id": pool,
                    **self._metadata(choice)}
        return observe(
            task, batch_task, snapshot.pools.get(pool), ids=metadata,
            counts=snapshot.node_counts.get(pool),
            read_status=lambda: self._read_status(job, name),
            read_stderr=lambda: (self.api.read_file(job, name, "stderr.txt") or b"").decode(
                "utf-8", "replace"),
            resubmit=self._resubmitter(task, job, name),
            max_attempts=self.conf.max_attempts,
        )

    def _clear_failed_job(self, job: str) -> None:
        """``per-task`` mode, submitting again: delete the attempt's job if Batch could not
        make its pool (raises a retryable error: the next pass adds it anew)."""
        found = self.api.get_job(job)
        info = found.execution_info if found is not None else None
        error = info.scheduling_error if info is not None else None
        if error is None:
            return
        self.api.delete_job(job)
        raise BatchApiError(f"job {job} had no pool ({error.code}); deleted, to be added "
                            "again", code="JobBeingDeleted", status=409)

    def _pool_not_made(self, task: TaskRecord, job: str, name: str, error: str,
                       choice: sizing.Choice) -> Observation:
        """``per-task`` mode: Batch added the job but could not make its pool (a quota):
        the task waits; the next pass deletes the job and adds it again
        (:meth:`_clear_failed_job`). Nothing changes here, so a dropped report is no loss."""
        code = error.split(":", 1)[0]
        reason = (f"Batch could not make the pool of job {job}: {error}"
                  + (f" ({QUOTA_CODES[code]})" if code in QUOTA_CODES else "")
                  + "; submitted again on the next pass")
        log.warning("task %s: %s", task.id, reason)
        return Observation(task_id=task.id, waiting_reason=reason,
                           backend_ref=WAIT + ids.ref(job, name), metadata=self._metadata(choice))

    def _made_next_attempt(self, task: TaskRecord, name: str) -> Observation | None:
        """The next attempt an earlier pass made after a preemption, when its report did
        not land (the core drops a pass's write for a task whose row changed meanwhile,
        e.g. by a client's ``GET``): the gone Batch task is then no loss, adopt the new one."""
        attempt = max(1, len(task.logs))
        if attempt >= self.conf.max_attempts:
            return None
        choice = self._choice(task, attempt + 1)
        job = (ids.auto_job_id(self.conf.pool_prefix, task.id, attempt + 1) if self.per_task
               else ids.job_id(self._pool_id(choice)))
        new = ids.task_id(task.id, attempt + 1)
        if self.api.get_task(job, new) is None:
            return None
        log.info("task %s: adopting attempt %d (Batch task %s), made by an earlier pass",
                 task.id, attempt + 1, new)
        return next_attempt(task.id, name, attempt, ids.ref(job, new))

    def _metadata(self, choice: sizing.Choice) -> dict[str, str]:
        return self.prices.metadata(choice) if self.prices else choice.metadata()

    def _retry_submit(self, task: TaskRecord) -> Observation | None:
        ref = self.submit_attempt(task, max(1, len(task.logs)))
        choice = self._choice(task)
        if ref.startswith(WAIT):
            reason = self._held.get(task.id, "Batch did not take the task yet")
            if (task.logs[-1:] or [{}])[0].get("metadata", {}).get("waiting_reason") == reason:
                return None
            return Observation(task_id=task.id, waiting_reason=reason, backend_ref=ref,
                               metadata=self._metadata(choice))
        return Observation(task_id=task.id, backend_ref=ref, waiting_reason="",
                           metadata=self._metadata(choice))

    def _read_status(self, job: str, name: str) -> dict[str, Any] | None:
        raw = self.api.read_file(job, name, STATUS_PATH)
        if not raw:
            return None
        try:
            status = json.loads(raw)
        except ValueError:
            return None
        return status if isinstance(status, dict) else None

    def _resubmitter(self, task: TaskRecord, job: str, name: str) -> Callable[[int], str]:
        def resubmit(attempt: int) -> str:
            self._remove(job, name)  # else Batch runs the requeued task again
            return self.submit_attempt(task, attempt)

        return resubmit

    def refresh(self, task: TaskRecord) -> Observation | None:
        """For ``GET``: the runner's status file of a task on a node, at most once per task
        every ``TES_BATCH_REFRESH_INTERVAL`` seconds in this process (clients poll far more
        often than that; each look is a Batch request)."""
        parsed = ids.parse_ref(task.backend_ref)
        if parsed is None or task.state not in ("INITIALIZING", "RUNNING"):
            return None
        now = time.monotonic()
        with self._lock:
            if now - self._looked.get(task.id, -1e9) < self.conf.refresh_interval:
                return None
            if len(self._looked) > 10_000:  # forget tasks not looked at lately
                self._looked = {k: v for k, v in self._looked.items()
                                if now - v < self.conf.refresh_interval}
            self._looked[task.id] = now
        try:
            status = self._read_status(*parsed)
        except BatchApiError as exc:  # not started on its node yet, or Batch busy
            log.debug("task %s: no status file to read yet: %s", task.id, exc)
            return None
        if status is None or status.get("final") or status.get("state") not in RUNNER_STATES:
            return None  # the reconcile pass reports the end, with Batch's word on it
        return if_changed(task, from_status(task, status, {}))

    def read_output(
        self, task: TaskRecord, index: int, stream: str, limit: int, offset: int | None = None
    ) -> OutputPiece:
        """From the live copy the runner keeps on the node of executor ``index``'s
        ``stream``, through the Batch file API (:mod:`tes_batch.live`); the path comes from
        the attempt's reference and the runner's layout only."""
        check_no_own_file(task, index, stream)
        ref = task.backend_ref or ""
        parsed = None if ref.startswith(WAIT) else ids.parse_ref(ref)
        if parsed is None:
            raise NoLiveOutput(f"task {task.id} has no Batch task on a node yet")
        return self.live.read(*parsed, index, stream, limit, offset)

    def cancel(self, task: TaskRecord) -> bool:
        """Terminate and delete the task's Batch task."""
        self._held.pop(task.id, None)
        ref = (task.backend_ref or "").removeprefix(WAIT)
        parsed = ids.parse_ref(ref)
        if parsed is None:
            return True
        try:
            self._remove(*parsed)
        except BatchApiError as exc:
            raise BackendError(f"could not cancel Batch task {ref}: {exc}") from None
        self.snapshots.forget()
        return True

    def remove(self, task: TaskRecord) -> None:
        """Delete the finished task's Batch task (and its files on the node) if left."""
        parsed = ids.parse_ref((task.backend_ref or "").removeprefix(WAIT))
        if parsed is not None:
            self._remove(*parsed)

    def _remove(self, job: str, name: str) -> None:
        """Terminate and delete an attempt's Batch task; in ``per-task`` mode also its job
        (and so its pool)."""
        self.api.remove_task(job, name)
        if self.per_task:
            self.api.delete_job(job)

    def shutdown(self, deadline: Deadline) -> None:
        """Nothing runs here: Batch keeps the tasks; close the HTTP connections."""
        self.api.client.close()
