"""The reliability scenario: real processes, faults injected while tasks flow.

gunicorn (production configuration) + two ``tes-server worker`` processes + a
private PostgreSQL + a private Redis. ``N`` tasks are submitted by concurrent
clients; while they are submitted and run: ``kill -9`` of a worker (a replacement
is started), a Redis restart (it keeps nothing: every queued message is lost), an
API restart and a PostgreSQL restart (:func:`crash_faults`; a test may inject others,
e.g. a rolling restart of the workers). Then every task must end, none may be lost
or duplicated, and none may have run twice.

How "run twice" is seen: each task's one executor appends its own number to a file
in ``/tes-wd/shared-global`` (a host folder shared by every task, appended with
``O_APPEND``, so concurrent lines never mix). A number found twice ran twice.

How clients stay correct across outages: a request that fails (connection refused
while the API restarts, 503 while PostgreSQL restarts) is retried; before a create
is sent again, the client looks its task up by its unique tag, because the first
attempt may have been stored before its answer was lost. That is what a careful
TES client does; the server then never holds two tasks for one request.

Used by ``tests/test_reliability.py`` (small N, in CI) and ``bench/bench_reliability.py``
(1,000 tasks).
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.deployment import Deployment
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.servers import TERMINAL

SETTINGS = {
    "TES_RECONCILE_INTERVAL": "1",
    "TES_HEARTBEAT_INTERVAL": "0.5",
    "TES_LOCAL_RUNTIME": "docker",
    "TES_LOCAL_MAX_TASKS": "4",
    "TES_WORKER_THREADS": "4",
}


@dataclass
class Outcome:
    """What the scenario saw."""

    submitted: int
    ids: list[str]
    states: dict[str, str]
    """State of each returned id at the end."""
    listed: set[str]
    """Ids of every task the server lists under this run's tag."""
    runs: collections.Counter
    """How many times each task number's executor ran."""
    numbers: dict[str, int]
    """Task id -> the client's number for it."""
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0
    logs: str = ""

    def problems(self) -> list[str]:
        """Everything that broke a promise; empty when the run was clean."""
        found: list[str] = []
        if len(self.ids) != self.submitted:
            found.append(f"{self.submitted} creates answered {len(self.ids)} ids")
        if len(set(self.ids)) != len(self.ids):
            found.append("duplicate ids returned")
        if self.listed != set(self.ids):
            found.append(f"lost: {sorted(set(self.ids) - self.listed)[:5]}, "
                         f"extra: {sorted(self.listed - set(self.ids))[:5]}")
        unfinished = {i: s for i, s in self.states.items() if s not in TERMINAL}
        if unfinished:
            found.append(f"{len(unfinished)} tasks not finished: {list(unfinished.items())[:5]}")
        twice = {n: c for n, c in self.runs.items() if c > 1}
        if twice:
            found.append(f"ran more than once: {twice}")
        missing = [i for i, s in self.states.items()
                   if s == "COMPLETE" and self.runs[self.numbers[i]] != 1]
        if missing:
            found.append(f"COMPLETE without having run: {missing[:5]}")
        return found

    def summary(self) -> str:
        """One line: counts by state, faults, time."""
        by_state = collections.Counter(self.states.values())
        return (f"{len(self.ids)} tasks in {self.seconds:.0f} s: "
                f"{dict(sorted(by_state.items()))}; faults: {', '.join(self.faults)}")


class Client:
    """A TES client that retries through outages without ever creating a task twice."""

    def __init__(self, url: str, run: str, deadline: float, work: float = 0.0) -> None:
        self.url = url
        self.run = run
        self.deadline = deadline
        self.work = work
        """Seconds each task's executor sleeps after writing its number."""
        self.session = requests.Session()

    def create(self, number: int) -> str:
        """Create task ``number``; return its id, whatever fails meanwhile."""
        body = {
            "name": f"reliability-{number}",
            "tags": {"reliability": self.run, "n": str(number)},
            "executors": [{
                "image": "alpine",
                "command": ["sh", "-c", f"echo {number} >> /tes-wd/shared-global/runs"
                            + (f"; sleep {self.work:g}" if self.work else "")],
            }],
        }
        attempt = 0
        while time.monotonic() < self.deadline:
            if attempt:
                found = self._find(number)
                if found:
                    return found
            attempt += 1
            try:
                response = self.session.post(f"{self.url}/tasks", json=body, timeout=20)
                if response.status_code == 200:
                    return response.json()["id"]
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"task {number} could not be created")

    def _find(self, number: int) -> str | None:
        while time.monotonic() < self.deadline:
            try:
                response = self.session.get(
                    f"{self.url}/tasks", timeout=20,
                    params=[("tag_key", "reliability"), ("tag_value", self.run),
                            ("tag_key", "n"), ("tag_value", str(number))],
                )
                if response.status_code == 200:
                    tasks = response.json()["tasks"]
                    return tasks[0]["id"] if tasks else None
            except requests.RequestException:
                pass
            time.sleep(0.3)
        return None

    def all_tasks(self) -> dict[str, str]:
        """Every task of this run: id -> state (retrying through outages)."""
        found: dict[str, str] = {}
        token = None
        while True:
            params = [("tag_key", "reliability"), ("tag_value", self.run),
                      ("page_size", "2000")]
            if token:
                params.append(("page_token", token))
            response = self._get(params)
            body = response.json()
            found.update({t["id"]: t["state"] for t in body["tasks"]})
            token = body.get("next_page_token")
            if not token:
                return found

    def _get(self, params: list[tuple[str, str]]) -> requests.Response:
        last = "no answer"
        while time.monotonic() < self.deadline + 60:
            try:
                response = self.session.get(f"{self.url}/tasks", params=params, timeout=20)
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise TimeoutError(f"listing tasks failed: {last}")


Fault = tuple[float, str, Callable[[], None]]
"""When (the fraction of tasks created), what (a name) and how (an action)."""


def crash_faults(deployment: Deployment, redis: PrivateRedis,
                 postgres: PrivatePostgres) -> list[Fault]:
    """The reliability scenario's faults: a worker killed, Redis, the API and PostgreSQL
    restarted."""
    return [
        (0.2, "kill -9 a worker, start another",
         lambda: (deployment.kill_worker(deployment.workers[0]), deployment.start_worker())),
        (0.4, "restart Redis", redis.restart),
        (0.6, "restart the API", lambda: (deployment.stop_api(), deployment.start_api())),
        (0.8, "restart PostgreSQL", postgres.restart),
    ]


def run_scenario(
    folder: Path, tasks: int, *, clients: int = 16, rate: float | None = None,
    timeout: float = 600.0, say: Callable[[str], None] = lambda line: None,
    faults: Callable[[Deployment, PrivateRedis, PrivatePostgres], list[Fault]] = crash_faults,
    work: float = 0.0, settings: dict[str, str] | None = None,
) -> Outcome:
    """Run the whole scenario with ``tasks`` tasks created at ``rate`` per second
    (default: spread over ``max(15, tasks / 10)`` seconds, so that every fault lands
    while tasks are being created and run); return what was seen. ``work``: seconds
    each task's executor sleeps; ``settings``: more ``TES_*`` settings."""
    rate = rate or tasks / max(15.0, tasks / 10)
    started = time.monotonic()
    deadline = started + timeout
    postgres = PrivatePostgres().start()
    redis = PrivateRedis(folder / "redis").start()
    deployment = Deployment(folder / "deploy", postgres.url, redis.url,
                            **{**SETTINGS, **(settings or {})})
    runs_file = folder / "deploy" / "data" / "shared-global" / "runs"
    done_faults: list[str] = []
    try:
        deployment.migrate()
        deployment.start_api()
        deployment.start_worker()
        deployment.start_worker()
        say(f"started: gunicorn, 2 workers, PostgreSQL :{postgres.port}, Redis :{redis.port}")
        run = uuid.uuid4().hex[:8]
        client_of = threading.local()

        released = time.monotonic()

        def create(number: int) -> str:
            time.sleep(max(0.0, released + number / rate - time.monotonic()))
            if not hasattr(client_of, "client"):
                client_of.client = Client(deployment.url, run, deadline, work)
            return client_of.client.create(number)

        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(create, number) for number in range(tasks)]
            done = lambda: sum(f.done() for f in futures)  # noqa: E731

            def at(fraction: float, name: str, action: Callable[[], None]) -> None:
                while done() < fraction * tasks and time.monotonic() < deadline:
                    time.sleep(0.05)
                say(f"{done()}/{tasks} created: {name}")
                action()
                done_faults.append(name)

            for fraction, name, action in faults(deployment, redis, postgres):
                at(fraction, name, action)
            ids = [f.result() for f in futures]
        say(f"all {tasks} created after {time.monotonic() - started:.0f} s; waiting for them")
        watcher = Client(deployment.url, run, deadline)
        while True:
            states = watcher.all_tasks()
            active = sum(1 for s in states.values() if s not in TERMINAL)
            if (not active and set(ids) <= set(states)) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        numbers = {task_id: number for number, task_id in enumerate(ids)}
        runs = collections.Counter(
            int(line) for line in runs_file.read_text().split()
        ) if runs_file.exists() else collections.Counter()
        return Outcome(
            submitted=tasks, ids=ids, states={i: states.get(i, "MISSING") for i in ids},
            listed=set(states), runs=runs, numbers=numbers, faults=done_faults,
            seconds=time.monotonic() - started, logs=deployment.logs(),
        )
    finally:
        deployment.stop()
        redis.stop()
        postgres.remove()
