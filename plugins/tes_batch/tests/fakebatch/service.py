"""The fake Batch account: HTTP handler, entities, and the simulator thread.

Operations (API 2025-06-01): pools (add, list, get, delete), jobs (add, list, get,
delete, terminate; a job with ``poolInfo.autoPoolSpecification`` of lifetime ``job`` gets
its pool, ``<autoPoolIdPrefix>_<guid>`` in ``executionInfo.poolId``, when it is added, and
loses it when it is terminated or deleted, as the REST reference says), tasks (add, list,
get, terminate, delete), task files (list with ``recursive`` and ``$filter``; get, with
``ocp-range``: 200 and the range, as Batch answers). Errors use Batch's body (``code``,
``message.value``) and codes (``PoolExists``, ``JobExists``,
``TaskExists``, ``PoolQuotaReached``, ``ActiveJobAndScheduleQuotaReached``,
``TaskNotFound``, ``JobNotFound``, ``PoolNotFound``, ``InvalidQueryParameterValue``,
``AuthenticationFailed``). Faults are switched on from the test (:class:`FakeBatch`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .auth import verify
from .odata import FilterError, compile_filter, select

API_VERSION = "2025-06-01"
PAGE_DEFAULT = 1000
_CAP = re.compile(r"\$target\s*=\s*min\(\s*(\d+)\s*,")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    range: str = ""
    """The ``ocp-range`` header (reads of a part of a task file)."""


@dataclass
class Node:
    """A compute node of a pool."""

    id: str
    pool: str
    low_priority: bool
    root: Path
    task: tuple[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    start_task_failed: bool = False
    preempted_until: float = 0.0
    """Until when the node is ``preempted`` (Batch gets the low-priority node back later)."""

    def usable(self) -> bool:
        """Whether a task may be scheduled here now."""
        return (not self.task and not self.start_task_failed
                and self.preempted_until <= time.monotonic())


@dataclass
class ApiFault(Exception):
    """An error answer: status, Batch code, message, extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeBatch:
    """A fake Batch account on ``http://127.0.0.1:<port>``: start it, point
    ``TES_BATCH_ACCOUNT_URL`` at :attr:`url`, sign with :attr:`account`/:attr:`key`."""

    account = "fakebatch"
    key = "ZmFrZS1iYXRjaC1rZXktZm9yLXRlc3RzLW9ubHk="

    def __init__(self, root: Path, runner: str | None = None, tick: float = 0.05,
                 on_node_lost: Any = None) -> None:
        self.root = root
        self.on_node_lost = on_node_lost or (lambda task: None)
        """Called with a task whose node died (what ran on the node, e.g. its containers,
        dies with it: the test's callback removes them)."""
        self.requeue_delay = 10.0
        """Seconds a requeued task waits before it is scheduled again (a new node takes
        minutes on Batch)."""
        self.runner = runner or str(Path(sys.executable).with_name("tes-runner"))
        self.tick = tick
        self.lock = threading.RLock()
        self.pools: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.nodes: dict[str, list[Node]] = {}
        self.requests: list[Recorded] = []
        self.quota: dict[str, str] = {}
        """``{"pools": code, "jobs": code}``: creating one fails with that code."""
        self.resize_errors: dict[str, tuple[str, str]] = {}
        """Pool id (``*``: every pool) -> (code, message) reported instead of nodes."""
        self.throttled: list[tuple[int, int]] = []
        """(status, Retry-After seconds) answered to the next requests, one each."""
        self.lose_answers = 0
        """The next so many task adds are carried out, then the connection is closed without
        an answer (a network cut or a client killed after sending)."""
        self.hold_adds = 0
        """The next so many task adds are carried out, then their answer waits until
        :meth:`release` (to kill the client while Batch has the task and it has no answer)."""
        self.holding = 0
        """Answers waiting now (see :attr:`hold_adds`)."""
        self._released = threading.Event()
        self.task_failures: dict[str, dict[str, Any]] = {}
        """Batch task id -> failureInfo the task completes with, instead of running."""
        self.start_task_failures: set[str] = set()
        """Pool ids (``*``: every pool) whose new nodes fail their start task."""
        self.paused = False
        self._counter = itertools.count(1)
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._simulate, daemon=True)]

    @property
    def url(self) -> str:
        """The account's endpoint."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def settings(self, **extra: str) -> dict[str, str]:
        """Server settings pointing the ``batch`` backend at this account (shared key)."""
        return {"TES_BACKEND": "batch", "TES_BATCH_ACCOUNT_URL": self.url,
                "TES_BATCH_ACCOUNT_NAME": self.account, "TES_BATCH_ACCOUNT_KEY": self.key,
                "TES_BATCH_SWEEP_INTERVAL": "3600",
                "TES_BATCH_PRICES_URL": "off", **extra}  # never the real prices API

    def start(self) -> FakeBatch:
        """Start serving and simulating."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop, killing what the nodes still run."""
        self._stop.set()
        self._server.shutdown()
        with self.lock:
            for nodes in self.nodes.values():
                for node in nodes:
                    _kill(node)

    def reset(self) -> None:
        """Forget the requests and every fault (the entities stay)."""
        with self.lock:
            self.requests.clear()
            self.quota.clear()
            self.resize_errors.clear()
            self.throttled.clear()
            self.task_failures.clear()
            self.start_task_failures.clear()
            self.lose_answers = 0
            self.hold_adds = 0
            self.paused = False
        self.release()

    def release(self) -> None:
        """Send the answers :attr:`hold_adds` kept waiting (new holds wait again)."""
        self._released.set()
        self._released = threading.Event()

    def hold_answer(self, method: str, target: str, status: int) -> None:
        """Keep this answer waiting until :meth:`release` if :attr:`hold_adds` says so
        (at most 5 minutes)."""
        with self.lock:
            if not (self.hold_adds and method == "POST" and status == 201
                    and urlsplit(target).path.endswith("/tasks")):
                return
            self.hold_adds -= 1
            self.holding += 1
            released = self._released
        try:
            released.wait(300)
        finally:
            with self.lock:
                self.holding -= 1

    def lost_answer(self, method: str, target: str, status: int) -> bool:
        """Whether the answer to this request is to be lost (see :attr:`lose_answers`)."""
        with self.lock:
            if (self.lose_answers and method == "POST" and status == 201
                    and urlsplit(target).path.endswith("/tasks")):
                self.lose_answers -= 1
                return True
        return False

    def recorded(self, method: str | None = None, path: str = "") -> list[Recorded]:
        """The requests so far, filtered by method and path prefix."""
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and r.path.startswith(path)]

    def find_task(self, batch_task: str) -> tuple[str, dict[str, Any]] | None:
        """``(job, task)`` of a Batch task id in any job."""
        with self.lock:
            for job, tasks in self.tasks.items():
                if batch_task in tasks:
                    return job, tasks[batch_task]
        return None

    def job_pool(self, job: str) -> str:
        """The pool a job's tasks run on: its ``poolInfo.poolId``, or the auto-pool Batch
        made for it (``executionInfo.poolId``)."""
        found = self.jobs[job]
        return (found["poolInfo"].get("poolId")
                or found.get("executionInfo", {}).get("poolId", ""))

    def preempt(self, batch_task: str) -> None:
        """Preempt the node running ``batch_task``: its process dies, the node is
        ``preempted`` for :attr:`requeue_delay` seconds (then idle again), the task is
        requeued (active again, ``requeueCount`` + 1)."""
        with self.lock:
            found = self.find_task(batch_task)
            assert found, batch_task
            job, task = found
            pool = self.job_pool(job)
            for node in list(self.nodes.get(pool, [])):
                if node.task == (job, batch_task):
                    _kill(node)
                    node.preempted_until = time.monotonic() + self.requeue_delay
            self.on_node_lost(task)
            task["_not_before"] = time.monotonic() + self.requeue_delay
            info = task["executionInfo"]
            info["requeueCount"] = info.get("requeueCount", 0) + 1
            info["lastRequeueTime"] = _now()
            self._set_state(task, "active")
            task.pop("nodeInfo", None)

    # -- HTTP ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one request (status, headers, body)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        ocp_range = {k.lower(): v for k, v in headers.items()}.get("ocp-range", "")
        record = Recorded(method, path, {k: v for k, v in query.items()
                                         if k != "api-version"}, payload, range=ocp_range)
        with self.lock:
            self.requests.append(record)
            throttle = self.throttled.pop(0) if self.throttled else None
        try:
            problem = verify(method, target, headers, self.account, self.key)
            if problem:
                raise ApiFault(403, "AuthenticationFailed", f"Server failed to authenticate "
                                                            f"the request: {problem}")
            if query.get("api-version") != API_VERSION:
                raise ApiFault(400, "InvalidQueryParameterValue",
                               f"api-version {query.get('api-version')!r} is not supported")
            if throttle:
                raise ApiFault(throttle[0], "TooManyRequests" if throttle[0] == 429
                               else "ServerBusy", "throttled by the fake",
                               {"Retry-After": str(throttle[1])})
            with self.lock:
                status, answer = self._route(method, path, query, payload, ocp_range)
        except ApiFault as fault:
            record.status = fault.status
            error = {"odata.metadata": f"{self.url}/$metadata#Microsoft.Azure.Batch.Protocol."
                                       "Entities.Container.errors/@Element",
                     "code": fault.code,
                     "message": {"lang": "en-US", "value": f"{fault.message}\n"
                                 f"RequestId:{uuid.uuid4()}\nTime:{_now()}"}}
            return fault.status, {"Content-Type": "application/json;odata=minimalmetadata",
                                  **fault.headers}, json.dumps(error).encode()
        record.status = status
        if isinstance(answer, bytes):
            return status, {"Content-Type": "application/octet-stream"}, answer
        if answer is None:
            return status, {}, b""
        return status, {"Content-Type": "application/json;odata=minimalmetadata"}, \
            json.dumps(answer).encode()

    def _route(self, method: str, path: str, query: dict[str, str],
               payload: Any, ocp_range: str = "") -> tuple[int, Any]:
        segments = [s for s in path.split("/") if s]
        match method, segments:
            case "POST", ["pools"]:
                return self._add_pool(payload)
            case "GET", ["pools"]:
                return self._list(self.pools.values(), query, "pools")
            case "GET", ["pools", pool]:
                return 200, select(self._pool(pool), query.get("$select"))
            case "DELETE", ["pools", pool]:
                self._pool(pool)
                for node in self.nodes.pop(pool, []):
                    _kill(node)
                del self.pools[pool]
                return 202, None
            case "GET", ["nodecounts"]:
                return self._list(self._node_counts(), {"maxresults": "10", **query},
                                  "nodecounts")
            case "POST", ["jobs"]:
                return self._add_job(payload)
            case "GET", ["jobs"]:
                return self._list(self.jobs.values(), query, "jobs")
            case "GET", ["jobs", job]:
                return 200, select(self._job(job), query.get("$select"))
            case "DELETE", ["jobs", job]:
                self._job(job)
                self._end_job(job)
                del self.jobs[job]
                self.tasks.pop(job, None)
                return 202, None
            case "POST", ["jobs", job, "terminate"]:
                found = self._job(job)
                if found["state"] in ("completed", "terminating"):
                    raise ApiFault(409, "JobCompleted", "The specified job is already in a "
                                                        "completed state.")
                self._end_job(job)
                found["executionInfo"].update(endTime=_now(), terminateReason="UserTerminate")
                self._set_state(found, "completed")
                return 202, None
            case "POST", ["jobs", job, "tasks"]:
                return self._add_task(job, payload)
            case "GET", ["jobs", job, "tasks"]:
                self._job(job)
                return self._list(self.tasks[job].values(), query, f"jobs/{job}/tasks")
            case "GET", ["jobs", job, "tasks", task]:
                return 200, select(self._task(job, task), query.get("$select"))
            case "POST", ["jobs", job, "tasks", task, "terminate"]:
                found = self._task(job, task)
                if found["state"] != "completed":
                    self._end_task(job, task)
                    found["executionInfo"].update(result="failure", endTime=_now(),
                                                  failureInfo={"category": "UserError",
                                                               "code": "TaskEnded",
                                                               "message": "Task Was Ended by "
                                                                          "User Request"})
                    self._set_state(found, "completed")
                return 204, None
            case "DELETE", ["jobs", job, "tasks", task]:
                self._task(job, task)
                self._end_task(job, task)
                del self.tasks[job][task]
                return 200, None
            case "GET", ["jobs", job, "tasks", task, "files"]:
                return self._list(self._files(job, task, query.get("recursive") == "true"),
                                  query, f"jobs/{job}/tasks/{task}/files")
            case "GET", ["jobs", job, "tasks", task, "files", *rest]:
                return 200, _part(self._file(job, task, "/".join(rest)), ocp_range)
        raise ApiFault(400, "InvalidUri", f"the fake does not answer {method} {path}")

    def _list(self, entities: Any, query: dict[str, str], where: str) -> tuple[int, Any]:
        try:
            keep = compile_filter(query.get("$filter"))
        except FilterError as exc:
            raise ApiFault(400, "InvalidQueryParameterValue", str(exc)) from None
        matching = [e for e in entities if keep(e)]
        size = int(query.get("maxresults", PAGE_DEFAULT))
        start = int(query.get("skip", "0"))
        page = matching[start:start + size]
        answer: dict[str, Any] = {
            "odata.metadata": f"{self.url}/$metadata#{where}",
            "value": [select(e, query.get("$select")) for e in page],
        }
        if start + size < len(matching):
            rest = {k: v for k, v in query.items() if k not in ("skip", "api-version")}
            rest["skip"] = str(start + size)
            link = "&".join(f"{k}={v}" for k, v in rest.items())
            answer["odata.nextLink"] = f"{self.url}/{where}?{link}"
        return 200, answer

    def _node_counts(self) -> list[dict[str, Any]]:
        """``GET /nodecounts``: each pool's nodes by state, dedicated and low-priority."""
        states = ("creating", "idle", "offline", "preempted", "rebooting", "reimaging",
                  "running", "starting", "startTaskFailed", "leavingPool", "unknown",
                  "unusable", "waitingForStartTask", "deallocated", "deallocating",
                  "upgradingOS")
        answer = []
        for pool_id, nodes in self.nodes.items():
            row: dict[str, Any] = {"poolId": pool_id}
            for kind, low in (("dedicated", False), ("lowPriority", True)):
                counts = dict.fromkeys(states, 0)
                for node in (n for n in nodes if n.low_priority == low):
                    state = ("startTaskFailed" if node.start_task_failed
                             else "preempted" if node.preempted_until > time.monotonic()
                             else "running" if node.task else "idle")
                    counts[state] += 1
                row[kind] = {**counts, "total": sum(counts.values())}
            answer.append(row)
        return answer

    def _entity(self, kind: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not payload.get("id"):
            raise ApiFault(400, "InvalidRequestBody", f"the {kind} has no id")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload["id"]):
            raise ApiFault(400, "InvalidPropertyValue", f"{kind} id {payload['id']!r}")
        now = _now()
        return {**payload, "url": f"{self.url}/{kind}s/{payload['id']}",
                "eTag": f"0x{next(self._counter):X}", "creationTime": now,
                "lastModified": now, "stateTransitionTime": now}

    def _add_pool(self, payload: Any) -> tuple[int, Any]:
        pool = self._entity("pool", payload)
        if self.quota.get("pools"):
            raise ApiFault(409, self.quota["pools"], "The specified account has reached "
                                                     "its pool quota")
        if _lower(pool["id"]) in {_lower(p) for p in self.pools}:
            raise ApiFault(409, "PoolExists", "The specified pool already exists.")
        pool.update(state="active", allocationState="steady", currentDedicatedNodes=0,
                    currentLowPriorityNodes=0, allocationStateTransitionTime=pool["creationTime"])
        self.pools[pool["id"]] = pool
        self.nodes[pool["id"]] = []
        return 201, None

    def _add_job(self, payload: Any) -> tuple[int, Any]:
        job = self._entity("job", payload)
        if self.quota.get("jobs"):
            raise ApiFault(409, self.quota["jobs"], "The specified account has reached its "
                                                    "active job and job schedule quota")
        if _lower(job["id"]) in {_lower(j) for j in self.jobs}:
            raise ApiFault(409, "JobExists", "The specified job already exists.")
        job["state"] = "active"
        job["executionInfo"] = {"startTime": job["creationTime"]}
        auto = (job.get("poolInfo") or {}).get("autoPoolSpecification")
        if auto is not None:  # Batch makes the job's pool now (lifetime job)
            if auto.get("poolLifetimeOption") != "job":
                raise ApiFault(400, "InvalidPropertyValue", "the fake makes auto-pools of "
                                                            "lifetime job only")
            if self.quota.get("pools"):  # the job is added, its pool is not
                job["executionInfo"]["schedulingError"] = {
                    "category": "UserError", "code": self.quota["pools"],
                    "message": "The specified account has reached its pool quota"}
                self.jobs[job["id"]] = job
                self.tasks[job["id"]] = {}
                return 201, None
            pool_id = f"{auto.get('autoPoolIdPrefix', '')}_{uuid.uuid4()}"
            pool = self._entity("pool", {**auto["pool"], "id": pool_id})
            pool.update(state="active", allocationState="steady", currentDedicatedNodes=0,
                        currentLowPriorityNodes=0,
                        allocationStateTransitionTime=pool["creationTime"])
            self.pools[pool_id] = pool
            self.nodes[pool_id] = []
            job["executionInfo"]["poolId"] = pool_id
        self.jobs[job["id"]] = job
        self.tasks[job["id"]] = {}
        return 201, None

    def _end_job(self, job: str) -> None:
        """A job ends (terminated or deleted): its running tasks die, and an auto-pool of
        lifetime ``job`` is deleted with it (``keepAlive`` false)."""
        for task_id in list(self.tasks.get(job, {})):
            self._end_task(job, task_id)
        auto = self.jobs[job]["poolInfo"].get("autoPoolSpecification")
        pool = self.jobs[job].get("executionInfo", {}).get("poolId")
        if auto and auto.get("poolLifetimeOption") == "job" and not auto.get("keepAlive") \
                and pool in self.pools:
            for node in self.nodes.pop(pool, []):
                _kill(node)
            del self.pools[pool]

    def _add_task(self, job: str, payload: Any) -> tuple[int, Any]:
        self._job(job)
        task = self._entity("task", payload)
        task["url"] = f"{self.url}/jobs/{job}/tasks/{task['id']}"
        if _lower(task["id"]) in {_lower(t) for t in self.tasks[job]}:
            raise ApiFault(409, "TaskExists", "The specified task already exists.")
        if len(task.get("commandLine", "")) > 8191:
            raise ApiFault(400, "InvalidPropertyValue", "commandLine is too long")
        task.update(state="active", executionInfo={"retryCount": 0, "requeueCount": 0})
        self.tasks[job][task["id"]] = task
        return 201, None

    def _pool(self, pool: str) -> dict[str, Any]:
        if pool not in self.pools:
            raise ApiFault(404, "PoolNotFound", "The specified pool does not exist.")
        return self.pools[pool]

    def _job(self, job: str) -> dict[str, Any]:
        if job not in self.jobs:
            raise ApiFault(404, "JobNotFound", "The specified job does not exist.")
        return self.jobs[job]

    def _task(self, job: str, task: str) -> dict[str, Any]:
        self._job(job)
        if task not in self.tasks[job]:
            raise ApiFault(404, "TaskNotFound", "The specified task does not exist.")
        return self.tasks[job][task]

    def _file(self, job: str, task: str, path: str) -> bytes:
        found = self._task(job, task)
        node = found.get("nodeInfo", {}).get("nodeId")
        if not node:
            raise ApiFault(409, "TaskNotYetStarted", "The task has not started on a node")
        base = self._task_dir(found["nodeInfo"]["poolId"], node, job, task)
        target = (base / path).resolve()
        if not target.is_relative_to(base.resolve()) or not target.is_file():
            raise ApiFault(404, "FileNotFound", "The specified file does not exist.")
        return target.read_bytes()

    def _files(self, job: str, task: str, recursive: bool) -> list[dict[str, Any]]:
        """``GET .../files``: the task folder's entries (all levels when ``recursive``),
        named by their path in it, as Batch lists them (no creation time: Linux nodes)."""
        found = self._task(job, task)
        node = found.get("nodeInfo", {}).get("nodeId")
        if not node:
            raise ApiFault(409, "TaskNotYetStarted", "The task has not started on a node")
        base = self._task_dir(found["nodeInfo"]["poolId"], node, job, task)
        entries = []
        for path in sorted(base.rglob("*") if recursive else base.glob("*")):
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed while listing (a roll)
                continue
            name = path.relative_to(base).as_posix()
            modified = datetime.fromtimestamp(info.st_mtime, UTC)
            entries.append({
                "name": name, "url": f"{self.url}/jobs/{job}/tasks/{task}/files/{name}",
                "isDirectory": path.is_dir(),
                "properties": {"lastModified": modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                               "contentLength": str(0 if path.is_dir() else info.st_size),
                               "contentType": "application/octet-stream",
                               "fileMode": oct(info.st_mode & 0o7777)[2:]}})
        return entries

    def _task_dir(self, pool: str, node: str, job: str, task: str) -> Path:
        return self.root / pool / node / "tasks" / job / task

    # -- simulator ----------------------------------------------------------------------

    def _simulate(self) -> None:
        while not self._stop.wait(self.tick):
            with self.lock:
                if self.paused:
                    continue
                for pool in list(self.pools.values()):
                    self._scale(pool)
                    self._schedule(pool)
                self._reap()

    def _pending(self, pool_id: str) -> list[tuple[str, dict[str, Any]]]:
        now = time.monotonic()
        return [(job_id, task) for job_id, job in self.jobs.items()
                if self.job_pool(job_id) == pool_id
                for task in self.tasks[job_id].values()
                if task["state"] == "active" and task.get("_not_before", 0) <= now]

    def _scale(self, pool: dict[str, Any]) -> None:
        """The autoscale formula as this fake reads it: ``min(cap, pending tasks)`` nodes
        of the kind the formula sets (the cap taken from the formula's ``min``)."""
        nodes = self.nodes[pool["id"]]
        formula = pool.get("autoScaleFormula", "")
        if pool.get("enableAutoScale"):
            cap = int(m.group(1)) if (m := _CAP.search(formula)) else 1
            low_priority = "$TargetLowPriorityNodes = $target" in formula
            busy = sum(1 for n in nodes if n.task)
            target = min(cap, busy + len(self._pending(pool["id"])))
        else:  # a fixed size (auto-pools): the nodes stay, idle or not
            low_priority = bool(pool.get("targetLowPriorityNodes"))
            target = (pool.get("targetLowPriorityNodes") or 0) + (
                pool.get("targetDedicatedNodes") or 0)
        error = self.resize_errors.get(pool["id"]) or self.resize_errors.get("*")
        if error and target > len(nodes):
            pool["resizeErrors"] = [{"code": error[0], "message": error[1]}]
            target = len(nodes)
        else:
            pool.pop("resizeErrors", None)
        while len(nodes) < target:
            node_id = f"tvmps_{uuid.uuid4().hex[:16]}_{'p' if low_priority else 'd'}"
            root = self.root / pool["id"] / node_id
            (root / "shared" / "tes-runner" / "bin").mkdir(parents=True, exist_ok=True)
            link = root / "shared" / "tes-runner" / "bin" / "tes-runner"
            if not link.exists():
                link.symlink_to(self.runner)
            self._mount(pool, root / "fsmounts")
            failing = bool({pool["id"], "*"} & self.start_task_failures) or (
                not self._start_task(pool, root))
            nodes.append(Node(node_id, pool["id"], low_priority, root,
                              start_task_failed=failing))
        idle = [n for n in nodes if n.usable()]
        while len(nodes) > target and idle:
            nodes.remove(idle.pop())
        count = len(nodes)
        pool["currentLowPriorityNodes" if low_priority else "currentDedicatedNodes"] = count
        pool["targetLowPriorityNodes" if low_priority else "targetDedicatedNodes"] = target

    def _start_task(self, pool: dict[str, Any], root: Path) -> bool:
        """Run the pool's start task on a new node, as Batch does, with ``python3`` and the
        virtualenv's ``pip`` standing in for installing the runner (each node already has
        this environment's ``tes-runner``); the rest of it (writing the private
        registry's password) runs for real. ``False`` when it fails."""
        start = pool.get("startTask")
        if not start:
            return True
        shims = root / "start-task-shims"
        shims.mkdir(exist_ok=True)
        for shim in (shims / "python3", root / "shared" / "tes-runner" / "bin" / "pip"):
            if not shim.exists():
                shim.write_text("#!/bin/sh\nexit 0\n")
                shim.chmod(0o755)
        env = {"PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}",
               "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
               "AZ_BATCH_NODE_ROOT_DIR": str(root)}
        for setting in start.get("environmentSettings") or ():
            env[setting["name"]] = setting.get("value", "")
        done = subprocess.run(["/bin/sh", "-c", start["commandLine"]], cwd=root, env=env,
                              capture_output=True, timeout=60)
        return done.returncode == 0

    def share_dir(self, azure_file_url: str) -> Path:
        """The folder standing for an Azure Files share (one per URL, for every pool)."""
        digest = hashlib.sha256(azure_file_url.encode()).hexdigest()[:12]
        return self.root / "azure-files" / digest

    def _mount(self, pool: dict[str, Any], mounts: Path) -> None:
        """The pool's Azure Files mounts on a new node: ``<mounts>/<relativeMountPath>``
        (a link to the share's folder; Batch mounts it with CIFS)."""
        for mount in pool.get("mountConfiguration") or ():
            share = mount.get("azureFileShareConfiguration")
            if not share:
                continue
            target = self.share_dir(share["azureFileUrl"])
            target.mkdir(parents=True, exist_ok=True)
            mounts.mkdir(parents=True, exist_ok=True)
            link = mounts / share["relativeMountPath"]
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)

    def _schedule(self, pool: dict[str, Any]) -> None:
        idle = [n for n in self.nodes[pool["id"]] if n.usable()]
        for job_id, task in self._pending(pool["id"]):
            if not idle:
                return
            node = idle.pop(0)
            node.task = (job_id, task["id"])
            task["nodeInfo"] = {"poolId": pool["id"], "nodeId": node.id,
                                "affinityId": f"TVM:{node.id}",
                                "nodeUrl": f"{self.url}/pools/{pool['id']}/nodes/{node.id}"}
            self._set_state(task, "running")
            task["executionInfo"]["startTime"] = _now()
            failure = self.task_failures.get(task["id"])
            if failure is not None:
                self._complete(task, node, None, failure)
                continue
            node.process = self._run(pool["id"], node, job_id, task)

    def _run(self, pool: str, node: Node, job: str, task: dict[str, Any]) -> subprocess.Popen:
        folder = self._task_dir(pool, node.id, job, task["id"])
        work = folder / "wd"
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ,
               "AZ_BATCH_TASK_WORKING_DIR": str(work), "AZ_BATCH_TASK_DIR": str(folder),
               "AZ_BATCH_NODE_SHARED_DIR": str(node.root / "shared"),
               "AZ_BATCH_NODE_MOUNTS_DIR": str(node.root / "fsmounts"),
               "AZ_BATCH_NODE_ID": node.id, "AZ_BATCH_POOL_ID": pool, "AZ_BATCH_JOB_ID": job,
               "AZ_BATCH_TASK_ID": task["id"]}
        for setting in task.get("environmentSettings") or ():
            env[setting["name"]] = setting.get("value", "")
        with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
            return subprocess.Popen(["/bin/sh", "-c", task["commandLine"]], cwd=work, env=env,
                                    stdout=out, stderr=err, start_new_session=True)

    def _reap(self) -> None:
        for nodes in self.nodes.values():
            for node in nodes:
                if node.process is None or node.process.poll() is None:
                    continue
                job, task_id = node.task  # type: ignore[misc]
                task = self.tasks.get(job, {}).get(task_id)
                code = node.process.returncode
                failure = None if code == 0 else {
                    "category": "UserError", "code": "FailureExitCode",
                    "message": "The task process exited with an unexpected exit code",
                    "details": [{"name": "Message", "value": f"The task process exited with "
                                                             f"an unexpected exit code: {code}"}]}
                if task is not None and task["state"] == "running":
                    self._complete(task, node, code, failure)
                else:
                    node.task, node.process = None, None

    def _complete(self, task: dict[str, Any], node: Node, code: int | None,
                  failure: dict[str, Any] | None) -> None:
        info = task["executionInfo"]
        info.update(endTime=_now(), result="failure" if failure else "success")
        if code is not None:
            info["exitCode"] = code
        if failure:
            info["failureInfo"] = failure
        self._set_state(task, "completed")
        node.task, node.process = None, None

    def _end_task(self, job: str, task_id: str) -> None:
        for nodes in self.nodes.values():
            for node in nodes:
                if node.task == (job, task_id):
                    _kill(node)

    def _set_state(self, task: dict[str, Any], state: str) -> None:
        task["previousState"] = task.get("state")
        task["previousStateTransitionTime"] = task.get("stateTransitionTime")
        task["state"] = state
        task["stateTransitionTime"] = _now()

    def drop(self, prefix: str) -> None:
        """Delete the pools and jobs whose id starts with ``prefix``, with their tasks and
        nodes (what one test made)."""
        with self.lock:
            for pool in [p for p in self.pools if p.startswith(prefix)]:
                for node in self.nodes.pop(pool, []):
                    _kill(node)
                del self.pools[pool]
            for job in [j for j in self.jobs if j.startswith(prefix)]:
                del self.jobs[job]
                self.tasks.pop(job, None)

    def wipe(self) -> None:
        """Delete every entity and the nodes' folders (between tests)."""
        with self.lock:
            for nodes in self.nodes.values():
                for node in nodes:
                    _kill(node)
            self.pools.clear()
            self.jobs.clear()
            self.tasks.clear()
            self.nodes.clear()
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)


def _kill(node: Node) -> None:
    if node.process is not None and node.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
    node.task, node.process = None, None


def _lower(text: str) -> str:
    return text.lower()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up is no error of the fake's; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(fake: FakeBatch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, data = fake.handle(self.command, self.path, dict(self.headers),
                                                body)
            fake.hold_answer(self.command, self.path, status)
            if fake.lost_answer(self.command, self.path, status):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(status)
            headers.setdefault("request-id", str(uuid.uuid4()))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


def _part(data: bytes, ocp_range: str) -> bytes:
    """The bytes ``ocp-range`` (``bytes=a-b`` or ``bytes=a-``) names of a file's ``data``;
    all of it without one; 416 when it starts beyond the end."""
    if not ocp_range:
        return data
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", ocp_range.strip())
    if not match:
        raise ApiFault(400, "InvalidHeaderValue", f"ocp-range {ocp_range!r}")
    start = int(match[1])
    stop = int(match[2]) + 1 if match[2] else len(data)
    if start >= len(data) and data:
        raise ApiFault(416, "InvalidRange", "The range specified is invalid for the current "
                                            "size of the resource.")
    return data[start:stop]


def wait_until(predicate: Any, timeout: float = 120.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something true; ``AssertionError`` at timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {predicate}")
