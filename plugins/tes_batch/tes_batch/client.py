"""The Batch requests the backend makes, on the ``azure-batch`` SDK's ``BatchClient``.

Errors become :class:`BatchApiError` with Batch's error code (``TaskExists``,
``PoolQuotaReached``, ...). 429 and 503 are retried by the SDK's retry policy, which
waits what ``Retry-After`` says. Never log a key or token: only ids and Batch's codes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from .settings import BatchSettings

log = logging.getLogger(__name__)

PAGE = 1000
"""Tasks per page of a list (Batch's maximum)."""
TASK_FIELDS = ("id", "state", "stateTransitionTime", "executionInfo", "nodeInfo")
JOB_FIELDS = ("id", "state", "executionInfo", "displayName")
"""What a reconcile pass reads of each auto-pool job (its pool's id is in executionInfo)."""
POOL_FIELDS = ("id", "state", "allocationState", "resizeErrors", "vmSize",
               "currentDedicatedNodes", "currentLowPriorityNodes", "creationTime")


class BatchApiError(RuntimeError):
    """A Batch request failed; ``code`` is Batch's error code (``""`` when none)."""

    def __init__(self, message: str, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _error(exc: Exception, what: str) -> BatchApiError:
    if isinstance(exc, HttpResponseError):
        code = ""
        if exc.error is not None and exc.error.code:
            code = exc.error.code
        message = exc.message or str(exc)
        if exc.error is not None and getattr(exc.error, "message", None):
            message = str(exc.error.message)
        status = exc.status_code
        return BatchApiError(f"{what}: {code or status}: {message.splitlines()[0]}", code, status)
    return BatchApiError(f"{what}: {exc}")


def make_client(conf: BatchSettings) -> BatchClient:
    """A client signing with the shared key, else with ``DefaultAzureCredential``."""
    if conf.shared_key:
        credential: Any = AzureNamedKeyCredential(conf.account_name, conf.account_key)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return BatchClient(conf.account_url, credential, connection_timeout=conf.request_timeout,
                       read_timeout=conf.request_timeout, retry_total=6, retry_backoff_max=60)


class BatchApi:
    """The requests of the backend, each one Batch request (a list: one per page)."""

    def __init__(self, client: BatchClient) -> None:
        self.client = client

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except AzureError as exc:
            raise _error(exc, what) from None

    def create_pool(self, spec: models.BatchPoolCreateOptions) -> bool:
        """Create the pool; ``False`` when it exists already."""
        return self._create(f"creating pool {spec.id}", self.client.create_pool, spec,
                            "PoolExists")

    def create_job(self, spec: models.BatchJobCreateOptions) -> bool:
        """Create the job; ``False`` when it exists already."""
        return self._create(f"creating job {spec.id}", self.client.create_job, spec,
                            "JobExists")

    def create_task(self, job: str, spec: models.BatchTaskCreateOptions) -> bool:
        """Add the task to the job; ``False`` when a task of that id is there already."""
        return self._create(f"adding task {spec.id} to job {job}", self.client.create_task,
                            spec, "TaskExists", job)

    def _create(self, what: str, function: Any, spec: Any, exists: str, *args: Any) -> bool:
        try:
            self._call(what, function, *args, spec)
        except BatchApiError as exc:
            if exc.code == exists:
                return False
            raise
        return True

    def list_tasks(self, job: str, *, filter: str | None = None,
                   select: Sequence[str] = TASK_FIELDS) -> list[models.BatchTask]:
        """The job's tasks (one request per page of 1,000)."""
        pages = self.client.list_tasks(job, filter=filter, select=list(select),
                                       max_results=PAGE)
        return self._collect(f"listing the tasks of job {job}", pages)

    def list_pools(self, prefix: str, **options: Any) -> list[models.BatchPool]:
        """The pools whose id starts with ``prefix`` (one request per page); ``options``
        go to the SDK (e.g. ``retry_total=0``)."""
        pages = self.client.list_pools(filter=f"startswith(id,'{prefix}')",
                                       select=list(POOL_FIELDS), **options)
        return self._collect("listing pools", pages)

    def list_jobs(self, prefix: str, select: Sequence[str] = JOB_FIELDS) -> list[models.BatchJob]:
        """The jobs whose id starts with ``prefix`` (one request per page of 1,000)."""
        pages = self.client.list_jobs(filter=f"startswith(id,'{prefix}')", select=list(select),
                                      max_results=PAGE)
        return self._collect("listing jobs", pages)

    def get_job(self, job: str) -> models.BatchJob | None:
        """One job (:data:`JOB_FIELDS`), or ``None`` when Batch does not know it."""
        try:
            return self.client.get_job(job, select=list(JOB_FIELDS))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _error(exc, f"reading job {job}") from None

    def delete_job(self, job: str) -> None:
        """Delete the job (its tasks end, an auto-pool of the job goes with it); one that is
        gone already is fine. Batch goes on deleting it: nobody waits."""
        self._delete("job", self.client.begin_delete_job, job)

    def list_node_counts(self) -> list[models.BatchPoolNodeCounts]:
        """The node counts by state of every pool of the account (one request per page of
        10 pools)."""
        return self._collect("listing node counts", self.client.list_pool_node_counts())

    def _collect(self, what: str, pages: Iterator[Any]) -> list[Any]:
        try:
            return list(pages)
        except AzureError as exc:
            raise _error(exc, what) from None

    def get_task(self, job: str, task: str) -> models.BatchTask | None:
        """One task, or ``None`` when Batch does not know it."""
        try:
            return self.client.get_task(job, task, select=list(TASK_FIELDS))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _error(exc, f"reading task {task} of job {job}") from None

    def read_file(self, job: str, task: str, path: str) -> bytes | None:
        """A file of the task's folder on its node, or ``None`` when there is none."""
        try:
            return b"".join(self.client.download_task_file(job, task, path))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _error(exc, f"reading {path} of task {task}") from None

    def list_files(self, job: str, task: str, prefix: str, **options: Any) -> dict[str, int]:
        """The sizes of the files of the task's folder on its node whose path starts with
        ``prefix`` (one ``GET .../files?recursive=true&$filter=startswith(name,...)`` per
        page); ``options`` go to the SDK. Raises :class:`BatchApiError` (404: the task is
        gone, 409: not started on a node)."""
        pages = self.client.list_task_files(job, task, recursive=True,
                                            filter=f"startswith(name,'{prefix}')", **options)
        found = self._collect(f"listing the files of task {task}", pages)
        return {f.name: int(f.properties.content_length) for f in found
                if f.name and f.properties is not None and not f.is_directory}

    def read_range(self, job: str, task: str, path: str, at: int, count: int,
                   **options: Any) -> bytes | None:
        """Bytes ``at`` to ``at + count - 1`` of a file of the task's folder (``ocp-range``;
        Batch answers 200 with the range), fewer if the file is shorter, ``None`` when it
        is not there (404) or shorter than ``at`` (416)."""
        try:
            return b"".join(self.client.download_task_file(
                job, task, path, ocp_range=f"bytes={at}-{at + count - 1}", **options))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            error = _error(exc, f"reading {path} of task {task}")
            if error.status == 416:
                return None
            raise error from None

    def remove_task(self, job: str, task: str) -> None:
        """Terminate, then delete the task; one that is gone already is fine."""
        for what, function in (("terminating", self.client.terminate_task),
                               ("deleting", self.client.delete_task)):
            try:
                function(job, task)
            except ResourceNotFoundError:
                return
            except AzureError as exc:
                error = _error(exc, f"{what} task {task} of job {job}")
                if error.code in ("TaskNotFound", "JobNotFound", "TaskCompleted"):
                    continue
                raise error from None

    def delete_pool_and_job(self, pool: str, job: str) -> None:
        """Delete the job, then the pool; Batch goes on deleting them (the SDK's pollers
        look every 30 s in the background, nobody waits for them)."""
        self._delete("job", self.client.begin_delete_job, job)
        self._delete("pool", self.client.begin_delete_pool, pool)

    def _delete(self, what: str, function: Any, name: str) -> None:
        try:
            function(name, polling_interval=30)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            error = _error(exc, f"deleting {what} {name}")
            if error.code in ("JobNotFound", "PoolNotFound", "JobBeingDeleted",
                              "PoolBeingDeleted"):
                return
            raise error from None
