"""The interface between the core and a compute backend.

A backend turns a stored task into work on some compute platform and reports
what it observes. It never decides task states: it reports observations
(:class:`Observation`) and the core applies them through ``tes_core.states``.
Backends that run work inside the worker process (like the local backend)
push observations through :class:`TaskReporter`; remote ones are asked in
batches by :meth:`Backend.poll`.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import ApiError

if TYPE_CHECKING:
    from ..config import Settings
    from ..shutdown import Deadline


class BackendError(RuntimeError):
    """The backend failed in a way that ends the task in SYSTEM_ERROR; the message says why."""


class SigningUnavailable(BackendError):
    """Raised by :meth:`Backend.dispatched` when a task's URLs could not be signed for now
    (the storage service or the identity endpoint did not answer, a delegation key could
    not be renewed). A worker's first submission waits and tries again; elsewhere it ends
    the task as any :class:`BackendError` does."""


class HandOverUnfinished(RuntimeError):
    """Raised by :meth:`Backend.shutdown` when work still goes on in this process at the
    deadline; the message says what."""


class WorkerStopping(RuntimeError):
    """Raised by :meth:`Backend.submit` of a backend that runs tasks in its worker once that
    worker stops: the task stays claimed, and is submitted again by the next worker."""


class UnsupportedParameterValue(ValueError):
    """A well-formed backend parameter value this backend does not allow (e.g. a VM size
    outside the allowed list), raised by :meth:`Backend.validate_parameters`: with
    ``backend_parameters_strict`` the create is refused (400); without, the parameter is
    dropped and the task's ``system_logs`` say so."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        """The canonical parameter name."""


@dataclass(frozen=True)
class TaskRecord:
    """A stored task as a backend sees it."""

    id: str
    state: str
    document: dict[str, Any]
    """The normalised task document (inputs, outputs, executors, resources, ...). In the
    records :meth:`Backend.submit` and :meth:`Backend.recover` get, and those
    :meth:`Backend.dispatched` returns, its URLs are as the task's runner must use them
    (signed by the submitter plugins that sign late); elsewhere, as stored."""
    creation_time: datetime
    logs: list[dict[str, Any]] = field(default_factory=list)
    backend_ref: str | None = None
    worker_id: str | None = None
    owner: str | None = None
    """The submitter's token subject; ``None`` when the task was created without auth."""
    tenant: str | None = None
    """The submitter's tenant (``""`` when the token names none); ``None`` without auth."""
    urls_ready: bool = False
    """Whether :attr:`document`'s URLs were signed for a backend (:meth:`Backend.dispatched`)."""


@dataclass
class Observation:
    """What a backend saw about one task; ``None`` fields say nothing."""

    task_id: str
    state: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    executor_logs: list[dict[str, Any]] | None = None
    """Replaces the current attempt's executor logs when given."""
    outputs: list[dict[str, str]] | None = None
    system_logs: list[str] = field(default_factory=list)
    """Lines appended to the current attempt's system logs."""
    metadata: dict[str, str] | None = None
    """Merged into the current attempt's metadata."""
    backend_ref: str | None = None
    new_attempt: bool = False
    """Start a new entry in ``logs`` (a retry) before applying the rest."""
    waiting_reason: str | None = None
    """Why the task waits (QUEUED or INITIALIZING), replacing the reason given before: kept
    in the current attempt's ``metadata["waiting_reason"]`` and as one line of its system
    logs, replaced in place. ``""`` says it waits no more: the metadata entry goes, the
    line stays as the last reason it waited for."""


class TaskReporter(Protocol):
    """How a backend that runs tasks itself tells the core what happened."""

    def report(self, observation: Observation) -> bool:
        """Apply an observation; ``False`` if the state change was refused (e.g. cancelled)."""
        ...

    def current_state(self, task_id: str) -> str | None:
        """The task's state in the database right now (``None`` if it no longer exists)."""
        ...

    def states_of(self, task_ids: Collection[str]) -> dict[str, str]:
        """The states of many tasks at once (a task that no longer exists is left out)."""
        ...


@dataclass
class BackendContext:
    """What the core hands a backend when it is built."""

    settings: Settings
    reporter: TaskReporter
    worker_id: str
    is_worker_alive: Any = None
    """``is_worker_alive(worker_id) -> bool``: for backends that run tasks inside workers."""
    refresh: Any = None
    """``refresh(task_id) -> bool``: have the core look at an active task now, as on
    ``GET`` (it loads the task, calls :meth:`Backend.refresh` with it and reports what that
    returns; ``True`` if the task changed), for a backend that notices a change between
    reconcile passes. Set once the core is built; ``None`` before."""
    prepare_task: Any = None
    """``prepare_task(task) -> TaskRecord``: what :meth:`Backend.dispatched` answers. Set
    once the core is built; ``None`` before (and then ``dispatched`` changes nothing)."""


def failed(task_id: str, reason: str) -> Observation:
    """An observation that ends a task in SYSTEM_ERROR with ``reason`` in its system logs."""
    return Observation(
        task_id=task_id, state="SYSTEM_ERROR", end_time=datetime.now(UTC), system_logs=[reason]
    )


def worker_lost(task: TaskRecord, what_happened: str) -> Observation:
    """SYSTEM_ERROR for a task whose worker died, saying what became of it."""
    return failed(
        task.id,
        f"the worker running this task ({task.worker_id}) stopped while the task was "
        f"{task.state}; {what_happened}. Submit it again to retry.",
    )


class NoLiveOutput(Exception):
    """An executor's live output cannot be served; the message says why (answered as 404)."""


@dataclass(frozen=True)
class OutputPiece:
    """Bytes of an executor's live output: ``data`` starts at byte ``first`` of its stream."""

    first: int
    data: bytes


class Backend(abc.ABC):
    """One compute platform. Subclass it, register it with ``tes_register_backends``."""

    name: ClassVar[str] = ""
    backend_parameters: ClassVar[Mapping[str, str]] = {}
    """Supported ``resources.backend_parameters`` keys (canonical spelling) and what each does."""
    runs_in_worker: ClassVar[bool] = False
    """True when the task's work lives inside the worker that submitted it (the local
    backend): the core then watches that worker and calls :meth:`recover` if it dies."""

    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.settings = context.settings

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """Check the values of supported backend parameters; raise ``ValueError`` to reject
        (400), :class:`UnsupportedParameterValue` for a value that is only refused when the
        task asks for ``backend_parameters_strict`` (otherwise it is dropped, and said)."""
        return None

    def storage(self) -> list[str]:
        """Storage locations this backend reads and writes, for service-info."""
        return []

    def start(self) -> None:
        """Called once in each worker before it takes messages (start threads, connect).

        Raise when the backend could never run a task here (a missing container
        runtime, unusable credentials): the worker then does not start.
        """
        return None

    def describe(self) -> str | None:
        """One line for the start-up message: what runs the tasks here and why
        (e.g. the container runtime chosen); ``None``: nothing to add. After :meth:`start`."""
        return None

    def unready_reason(self) -> str | None:
        """Why this backend cannot run tasks right now (``None``: it can), for ``/readyz``
        of a process that runs tasks. Called on every probe: cache what it checks."""
        return None

    def shutdown(self, deadline: Deadline) -> None:
        """Called when the worker stops (SIGTERM): hand the work over, never fail it or
        touch what runs on the platform, then stop threads and release connections, by
        ``deadline`` (its ``remaining()`` seconds; see docs/plugin_hooks.md). Raise
        :class:`HandOverUnfinished` if work is still going on here at the deadline: the
        worker then keeps its claims until it is gone, as after a crash."""
        return None

    def dispatched(self, task: TaskRecord) -> TaskRecord:
        """``task`` with its URLs as its runner must use them: the submitter plugins that
        sign late (see :mod:`tes_core.task_urls`) sign them now, for this attempt.

        :meth:`submit` and :meth:`recover` get such records already. Call it on a record
        from :meth:`poll` or :meth:`refresh` before starting a new attempt with it (a retry
        after preemption), so the attempt gets fresh tokens; a record already signed is
        returned as it is. Raises :class:`BackendError` when a URL can no longer be signed
        (the server lost the account's credential since the create), and
        :class:`SigningUnavailable` (a ``BackendError`` too) when signing failed for now.
        """
        prepare = self.context.prepare_task
        if prepare is None or task.urls_ready:
            return task
        try:
            return prepare(task)  # type: ignore[no-any-return]
        except ApiError as exc:  # a URL refused, the storage settings wrong: for good
            raise BackendError(
                f"signing the task's storage URLs failed: {exc}; fix the server's storage "
                "settings and submit the task again"
            ) from exc
        except Exception as exc:  # a service that did not answer: for now
            raise SigningUnavailable(
                f"the task's storage URLs could not be signed yet: {exc}"
            ) from exc

    @abc.abstractmethod
    def submit(self, task: TaskRecord) -> str | None:
        """Hand the task to the platform; return the platform's reference for it.

        Called by a worker with the task QUEUED. After a worker crash it may be
        called again for the same task, so make it idempotent (e.g. name the
        platform's job after ``task.id``). Raise :class:`BackendError` (or any
        exception) to end the task in SYSTEM_ERROR with the message in its logs.
        """

    @abc.abstractmethod
    def cancel(self, task: TaskRecord) -> bool:
        """Stop the task and delete what the platform created for it. Must be idempotent.

        Return ``True`` when it is all gone (the core then marks the task
        CANCELED), ``False`` when clean-up goes on in the background and the
        backend will report CANCELED itself.
        """

    def recover(self, task: TaskRecord) -> Observation | None:
        """Take over an active task whose worker died (``runs_in_worker`` backends only).

        The default gives up: the task ends in SYSTEM_ERROR rather than being
        run twice. Return ``None`` when the backend resumes the task itself.
        """
        return worker_lost(task, "it was not started again, so that it never runs twice")

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        """Report on many active tasks at once (the reconcile loop calls this).

        Ask the platform in as few calls as it allows (one per job or page,
        not one per task). The default reports nothing.
        """
        return []

    def refresh(self, task: TaskRecord) -> Observation | None:
        """A quick look at one active task for ``GET /tasks/{id}``; ``None`` when not useful."""
        return None

    def read_output(
        self, task: TaskRecord, index: int, stream: str, limit: int, offset: int | None = None
    ) -> OutputPiece:
        """At most ``limit`` bytes that executor ``index`` of a running task has written to
        ``stream`` (``"stdout"`` or ``"stderr"``) so far: from byte ``offset`` of the stream
        (or the earliest byte still kept, if later), or its last bytes when ``offset`` is
        ``None``; ``OutputPiece(0, b"")`` when it wrote nothing yet. For
        ``GET /tasks/{id}/executors/{index}/stdout``, called in an API process. Never open
        a path the task document names. Raise :class:`NoLiveOutput` with the reason when
        it cannot be read (the default: this backend does not serve live output)."""
        raise NoLiveOutput("this backend does not serve live output")

    def remove(self, task: TaskRecord) -> None:
        """Delete what this backend keeps of a finished task (retention, ``TES_RETENTION``).

        Called by the reconcile pass, in whichever worker holds its lock, just before the
        task's row is deleted. Make it idempotent; raise to keep the task until the next
        pass tries again. The default keeps nothing, which fits a backend whose platform
        keeps nothing of a task once it finished.
        """
        return None
