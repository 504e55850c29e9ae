"""The task service: what the API does with tasks.

It is the only caller of the submitter hooks (detection, tags, URL rewriting,
input injection) and the place where ``backend_parameters`` are checked
against what the backend declares.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from marshmallow import ValidationError

from .auth.ownership import Ownership
from .auth.principal import Principal
from .backends.base import (
    Backend,
    NoLiveOutput,
    Observation,
    TaskRecord,
    UnsupportedParameterValue,
)
from .backends.live_output import ExecutorOutput
from .blobstore import BlobStore
from .config import ConfigError, Settings
from .db import Database
from .errors import ApiError, BadRequest, NotFound, SubmitterError
from .plugins import Hooks
from .reporting import DatabaseReporter
from .schemas import ListQuery, load_task
from .schemas.limits import TaskLimits
from .schemas.query import encode_page_token
from .states import State, is_terminal
from .storage_policy import check_storages_installed
from .store import (
    NewTask,
    count_by_state,
    get_full,
    get_state,
    list_page,
    load_record,
    peek_state,
    store_task,
    transition,
)
from .submitter import Submitter
from .task_urls import URL_LISTS, at_field, rewrite_at_create, rewrite_for_backend
from .tasklogs import new_attempt
from .views import render
from .worker.actors import BrokerUnavailable

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Sends work to the workers (Dramatiq actors in practice)."""

    def submit(self, task_id: str) -> None:
        """Ask a worker to hand ``task_id`` to the backend."""
        ...

    def cancel(self, task_id: str) -> None:
        """Ask a worker to stop ``task_id`` and clean up."""
        ...


class TaskService:
    """Create, read, list and cancel tasks."""

    def __init__(
        self,
        db: Database,
        hooks: Hooks,
        backend: Backend,
        dispatcher: Dispatcher,
        reporter: DatabaseReporter,
        refresh_timeout: float = 2.0,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.settings = settings if settings is not None else Settings()
        self._storage: BlobStore | None = None
        self._storage_ready = False
        self._storage_lock = threading.Lock()
        self.hooks = hooks
        self.backend = backend
        self.dispatcher = dispatcher
        self.reporter = reporter
        self.refresh_timeout = refresh_timeout
        self._adapts = hooks.has_submitter_hooks()
        self._refreshes = type(backend).refresh is not Backend.refresh
        self._refresh_pool = (
            concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="tes-refresh")
            if self._refreshes
            else None
        )
        self._parameters = {key.lower(): key for key in backend.backend_parameters}
        self.ownership = Ownership(db)
        self.limits = TaskLimits.from_settings(self.settings)

    # -- create -------------------------------------------------------------------

    def create(self, document: Any, principal: Principal | None = None) -> str:
        """Validate, adapt and store a new task owned by ``principal``, queue it, and
        return its id."""
        try:
            task = load_task(document, self.limits)
        except ValidationError as exc:
            raise _bad_task(exc) from None
        check_storages_installed(task)
        submitter = self._adapt(task) if self._adapts else None
        notes = self._check_backend_parameters(task)
        new = NewTask(
            document=task,
            backend=self.backend.name,
            submitter=submitter.name if submitter else None,
            logs=[new_attempt(notes)] if notes else None,
            owner=principal.owner if principal else None,
        )
        new.encoded  # noqa: B018 - encode before taking the write lock
        task_id = store_task(self.db, new)
        if principal is not None:
            self.ownership.remember(task_id, new.owner)
        try:
            self.dispatcher.submit(task_id)
        except BrokerUnavailable:
            # Logged once per outage by the dispatcher; reconcile sends it when it is back.
            log.info("task %s stored; its submit message waits for the broker", task_id)
        except Exception:
            # The task is stored; the reconcile loop submits what was never sent.
            log.warning("task %s stored but the submit message failed; reconcile will retry",
                        task_id, exc_info=True)
        return task_id

    @property
    def storage(self) -> BlobStore | None:
        """The server's blob storage (``TES_STORAGE_*``), built by a plugin on first use;
        ``None`` when none is configured."""
        if not self._storage_ready:
            with self._storage_lock:
                if not self._storage_ready:
                    try:
                        self._storage = self.hooks.blob_storage(self.settings)
                    except ConfigError as exc:
                        raise ApiError(f"the server's storage is misconfigured: {exc}") from None
                    self._storage_ready = True
        return self._storage

    def _adapt(self, task: dict[str, Any]) -> Submitter | None:
        settings, storage = self.settings, self.storage
        submitter = self.hooks.detect_submitter(task, settings)
        if submitter is not None:
            task["tags"] = {**(task.get("tags") or {}), **submitter.tags()}
        try:
            injected = self.hooks.inject_inputs(task, submitter, self.backend, settings, storage)
        except SubmitterError as exc:
            raise at_field(exc, "inputs", "inputs") from None
        if injected:
            inputs = task.setdefault("inputs", [])
            have = {item["path"] for item in inputs}
            for item in injected:
                if item.get("path") not in have:
                    inputs.append({"type": "FILE", **item})
                    have.add(item["path"])
        rewriters = self.hooks.url_rewriters(task, submitter, self.backend, settings, storage)
        if rewriters:
            rewrite_at_create(task, rewriters)
        return submitter

    def for_backend(self, task: TaskRecord) -> TaskRecord:
        """``task`` with the URLs the submitter plugins sign late signed now, for the
        attempt a backend is about to start or take over (``BackendContext.prepare_task``;
        see :mod:`tes_core.task_urls`). The submitter is found again from the stored
        document, as at create.

        :raises SubmitterError: a URL that can no longer be signed.
        """
        if not self._adapts:
            return replace(task, urls_ready=True)
        stored = task.document
        document = {**stored}
        for _, key in URL_LISTS:
            if stored.get(key):
                document[key] = [dict(item) for item in stored[key]]
        settings, storage = self.settings, self.storage
        submitter = self.hooks.detect_submitter(document, settings)
        rewriters = self.hooks.url_rewriters(document, submitter, self.backend, settings,
                                             storage)
        if not rewrite_for_backend(document, rewriters):
            return replace(task, urls_ready=True)
        return replace(task, document=document, urls_ready=True)

    def _check_backend_parameters(self, task: dict[str, Any]) -> list[str]:
        resources = task.get("resources")
        given: Mapping[str, str] = (resources or {}).get("backend_parameters") or {}
        if not given:
            return []
        assert resources is not None
        strict = bool(resources.get("backend_parameters_strict"))
        kept: dict[str, str] = {}
        unknown: list[str] = []
        for key, value in given.items():
            canonical = self._parameters.get(key.lower())
            if canonical is None:
                unknown.append(key)
            else:
                kept[canonical] = value
        supported = ", ".join(sorted(self.backend.backend_parameters)) or "none"
        if unknown and strict:
            raise BadRequest(
                f"backend '{self.backend.name}' does not support backend_parameters "
                f"{', '.join(sorted(unknown))} (supported: {supported}); remove them or set "
                "backend_parameters_strict to false",
                errors={
                    f"resources.backend_parameters.{key}": ["not supported"] for key in unknown
                },
            )
        dropped = self._validate_parameters(kept, strict)
        resources["backend_parameters"] = kept
        if unknown:
            dropped.insert(0, (
                f"backend_parameters not supported by backend '{self.backend.name}' were "
                f"ignored: {', '.join(sorted(unknown))} (supported: {supported})"))
        return dropped

    def _validate_parameters(self, kept: dict[str, str], strict: bool) -> list[str]:
        """Let the backend check the values; a value it does not allow is a 400 when
        ``strict``, else dropped from ``kept`` with a note for the task's system logs."""
        notes: list[str] = []
        while True:
            try:
                self.backend.validate_parameters(kept)
                return notes
            except UnsupportedParameterValue as exc:
                if strict or exc.key not in kept:
                    raise BadRequest(
                        str(exc), field=f"resources.backend_parameters.{exc.key}") from None
                del kept[exc.key]
                notes.append(f"{exc}; ignored (backend_parameters_strict is not set)")
            except ValueError as exc:
                raise BadRequest(str(exc), field="resources.backend_parameters") from None

    # -- read ---------------------------------------------------------------------

    def get(self, task_id: str, view: str, principal: Principal | None = None) -> dict[str, Any]:
        """One task in ``view``; 404 if unknown or not ``principal``'s. An active task is
        first refreshed from backends that can be asked (within ``TES_GET_REFRESH_TIMEOUT``)."""
        self.ownership.check(task_id, principal)
        task = self._read(task_id, view)
        if self._refreshes and not is_terminal(task["state"]) and self._refresh(task_id):
            task = self._read(task_id, view)
        return task

    def _read(self, task_id: str, view: str) -> dict[str, Any]:
        if view == "MINIMAL":
            states = self.reporter.states
            state = states.get(task_id)
            if state is None:
                generation = states.generation()
                state = peek_state(self.db, task_id)
                if state is None:
                    raise NotFound(f"no task with id {task_id!r}")
                states.remember(task_id, state, generation)
            return {"id": task_id, "state": state}
        with self.db.read() as conn:
            row = get_full(conn, task_id)
        if row is None:
            raise NotFound(f"no task with id {task_id!r}")
        return render(row, view)

    def refresh(self, task_id: str) -> bool:
        """Ask the backend about an active task now (:attr:`BackendContext.refresh`);
        whether it changed. ``False`` when the backend has nothing to ask."""
        return self._refreshes and self._refresh(task_id)

    def _refresh(self, task_id: str) -> bool:
        """Ask the backend about an active task, within the time bound; whether it changed."""
        assert self._refresh_pool is not None

        def look() -> Observation | None:
            with self.db.read() as conn:
                record = load_record(conn, task_id)
            return self.backend.refresh(record) if record else None

        future = self._refresh_pool.submit(look)
        try:
            observation = future.result(timeout=self.refresh_timeout)
        except concurrent.futures.TimeoutError:
            return False
        except Exception:
            log.warning("refreshing task %s from the backend failed", task_id, exc_info=True)
            return False
        return observation is not None and self.reporter.report(observation)

    def output(
        self, task_id: str, index: int, stream: str, limit: int, offset: int | None = None,
        principal: Principal | None = None,
    ) -> ExecutorOutput:
        """At most ``limit`` bytes (and ``TES_OUTPUT_TAIL_MAX``) of what executor ``index``
        wrote to ``stream``. Without ``offset``: its end, from the stored executor log once
        it ended (or the task did), else live from the backend. With ``offset`` (a byte of
        the stream): from there, live from the backend while the task runs (the live copy
        outlasts the executor), else from the stored log (its end, offsets unknown). 404
        if the task is unknown or not ``principal``'s, has no such executor, or the backend
        serves no live output for a running one."""
        self.ownership.check(task_id, principal)
        with self.db.read() as conn:
            record = load_record(conn, task_id)
        if record is None:
            raise NotFound(f"no task with id {task_id!r}")
        count = len(record.document.get("executors") or [])
        if not 0 <= index < count:
            raise NotFound(f"task {task_id} has no executor {index} (it has {count})")
        limit = min(limit, self.settings.output_tail_max)
        ended = list((record.logs or [{}])[-1].get("logs") or [])
        stored = (ended[index].get(stream) if index < len(ended) else None) or ""
        if is_terminal(record.state) or (index < len(ended) and offset is None):
            return ExecutorOutput(stored.encode()[-limit:].decode("utf-8", errors="replace"))
        try:
            piece = self.backend.read_output(record, index, stream, limit, offset)
        except NoLiveOutput as exc:
            if index < len(ended):
                return ExecutorOutput(stored.encode()[-limit:].decode("utf-8", errors="replace"))
            raise NotFound(str(exc)) from None
        return ExecutorOutput.of(piece, whole=offset is not None)

    def list(self, query: ListQuery, principal: Principal | None = None) -> dict[str, Any]:
        """One page of tasks, newest first (only ``principal``'s own unless an admin)."""
        with self.db.read() as conn:
            rows, next_seq = list_page(conn, query, principal.scope if principal else None,
                                       self.settings.list_max_bytes)
        body: dict[str, Any] = {"tasks": [render(row, query.view) for row in rows]}
        if next_seq is not None:
            body["next_page_token"] = encode_page_token(next_seq)
        return body

    def counts(self, query: ListQuery, principal: Principal | None = None) -> dict[str, Any]:
        """How many tasks match ``query``'s filters, per state (``GET /task-counts``),
        counted up to ``TES_COUNT_LIMIT`` (see :func:`~tes_core.store.count_by_state`);
        ``capped`` lists the states whose count means "at least"."""
        with self.db.read() as conn:
            counts, capped = count_by_state(
                conn, query, principal.scope if principal else None, self.settings.count_limit
            )
        return {"counts": counts, "capped": capped}

    # -- cancel -------------------------------------------------------------------

    def cancel(self, task_id: str, principal: Principal | None = None) -> None:
        """Ask for cancellation; a finished task is left as it is (a no-op). 404 if
        unknown or not ``principal``'s."""
        self.ownership.check(task_id, principal)
        with self.db.write() as conn:
            row = get_state(conn, task_id)
            if row is None:
                raise NotFound(f"no task with id {task_id!r}")
            if is_terminal(row.state) or row.state == State.CANCELING:
                return
            changed = transition(conn, task_id, State.CANCELING)
        if changed:
            self.reporter.states.forget(task_id)
            self.hooks.task_state_changed(task_id, row.state, State.CANCELING.value)
            try:
                self.dispatcher.cancel(task_id)
            except Exception:
                log.warning("cancel message for task %s failed; reconcile will finish it",
                            task_id, exc_info=True)

    def close(self) -> None:
        """Stop helper threads."""
        if self._refresh_pool is not None:
            self._refresh_pool.shutdown(wait=False, cancel_futures=True)


def _bad_task(exc: ValidationError) -> BadRequest:
    errors = _flatten(exc.messages)
    first = next(iter(errors.items()), ("task", ["is not valid"]))
    field, reasons = first
    label = "task" if field == "_schema" else field
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return BadRequest(f"invalid task: {label}: {reasons[0]}{more}", errors=errors)


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
            if key == "_schema" and not prefix:
                name = "_schema"
            flat.update(_flatten(value, name))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    if isinstance(messages, list):
        flat = {}
        for item in messages:
            flat.update(_flatten(item, prefix))
        return flat
    return {prefix or "_schema": [str(messages)]}
