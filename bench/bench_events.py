"""Following N active tasks: polling clients against one events client (``GET /events``).

The production shape of bench_poll: tes-core under gunicorn with
``tes_core.gunicorn_conf``, a private Redis as the broker and no worker, so the
``--tasks`` tasks stay active (QUEUED) and each poll reads the database. While
tasks change state at ``--change-rate`` per second (cancel requests: QUEUED ->
CANCELING, each one event), three windows of ``--seconds`` each are measured:

* **idle**: nobody follows the tasks (what the changes cost by themselves);
* **polling**: what workflow engines do today: every task polled with
  ``GET /tasks/{id}`` every ``--poll-every`` seconds (open loop, bench/loadgen.py);
* **events**: one client holds ``GET /events`` open and counts the events it gets.

Printed: requests per second the server answered and server CPU per second in each
window, and the ratios polling / events. Judged: the server CPU that following costs
(the window's minus the idle window's) with events is at most 0.2x that of polling,
and the events client got every change.

Then **listeners**: ``--listeners`` (100) clients hold streams open on one gunicorn
process with enough threads (``--threads 128``, ``TES_EVENTS_MAX_CLIENTS``) while
tasks are created as fast as 8 connections can (bench/loadgen.py) and
``--change-rate`` tasks change state each second (the listeners are sockets read by
one thread of this process, so their client side takes little of the shared CPUs).
``--rounds`` windows with and ``--rounds`` without the listeners run in ABBA order
(without, with, with, without, ...), so a drift in the machine's load hits both
alike. Judged: the median create rate with them is at least 0.8x the median without,
and every listener got every change; printed: every window's rate, server CPU per
create, p50/p99 delivery latency (from the event's ``time`` to its arrival at a
listener).

    python -m bench.bench_events [--tasks 1000] [--poll-every 5] [--seconds 15]
        [--change-rate 5] [--listeners 100] [--rounds 4] [--part both|polling|listeners]
        [--database URL]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._common import (
    API,
    Client,
    Load,
    Outcome,
    Scratch,
    at_least,
    at_most,
    bench_arguments,
    bench_main,
    create_tasks,
    interleave,
    machine_load,
    median,
    process_cpu,
    run_load,
    running,
    tes_gunicorn,
)
from tes_core.client.http import ClientError, TesClient, hang_up
from tes_core.client.sse import read_events

TARGET = 0.2
CREATE_TARGET = 0.8
BODY = json.dumps({"executors": [{"image": "alpine", "command": ["true"]}]}).encode()


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--tasks", type=int, default=1000, help="active tasks followed")
    parser.add_argument("--poll-every", type=float, default=5.0,
                        help="seconds between two polls of one task")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per window")
    parser.add_argument("--change-rate", type=float, default=5.0,
                        help="state changes per second during every window")
    parser.add_argument("--listeners", type=int, default=100, help="streams held open")
    parser.add_argument("--rounds", type=int, default=4,
                        help="create-rate rounds of each (ABBA order; medians judged)")
    parser.add_argument("--part", choices=("both", "polling", "listeners"), default="both",
                        help="run only one of the two parts")
    return parser


class Changes:
    """Cancels tasks at a steady rate (one state change, one event each)."""

    def __init__(self, base: str, ids: list[str], rate: float, pid: int | None = None) -> None:
        self.client = Client(base)
        self.ids = ids
        self.rate = rate
        self.pid = pid
        """The server's process (its CPU is measured during creates)."""

    def window(self, seconds: float) -> int:
        """Make changes for ``seconds``; return how many."""
        made = 0
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            while made < int(elapsed * self.rate) and self.ids:
                status, data, _ = self.client.request(
                    "POST", f"{API}/tasks/{self.ids.pop()}:cancel")
                if status != 200:
                    raise SystemExit(f"bench_events: cancel failed: {status} {data[:200]!r}")
                made += 1
            time.sleep(0.01)
        return made


class Follower(threading.Thread):
    """One events client counting the state events it receives, and how late each was."""

    def __init__(self, url: str, patience: float = 15.0) -> None:
        super().__init__(daemon=True)
        # The places of the previous round's listeners free within a second or two of
        # their hanging up: wait for one, as a client honouring Retry-After does.
        deadline = time.monotonic() + patience
        while True:
            try:
                self.response = TesClient(url).open_events()
                break
            except ClientError as exc:
                if exc.status != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.events = 0
        self.delays: list[float] = []

    def run(self) -> None:
        try:
            for event in read_events(self.response):
                if event.event == "state":
                    arrived = time.time()
                    self.events += 1
                    sent = json.loads(event.data)["time"]
                    self.delays.append(arrived - datetime.fromisoformat(sent).timestamp())
        except (OSError, ValueError, AttributeError):
            pass


class Crowd:
    """``count`` listeners as bare sockets read by one thread (tests/events/rawstream.py):
    on the shared machine their client side costs little, so the windows with them
    measure what they cost the server, not what 100 client threads cost the CPUs."""

    def __init__(self, base: str, count: int, patience: float = 30.0) -> None:
        from tests.events.rawstream import RawStream, pump

        port = urlsplit(base).port or 80
        self.streams: list[RawStream] = []
        # The places of the previous window's listeners free within a second or two of
        # their hanging up: wait for them, as clients honouring Retry-After do.
        deadline = time.monotonic() + patience
        while len(self.streams) < count:
            batch = [RawStream(port) for _ in range(count - len(self.streams))]
            pump(batch, functools.partial(_answered, batch), timeout=60)
            for stream in batch:
                if stream.opened:
                    self.streams.append(stream)
                elif stream.status == 503 and time.monotonic() < deadline:
                    stream.close()
                else:
                    raise SystemExit(f"bench_events: a listener was refused: {stream.head!r}")
            if len(self.streams) < count:
                time.sleep(0.2)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=pump, args=(self.streams, self._stop.is_set,
                                                           3600.0), daemon=True)
        self._reader.start()

    def counts(self) -> list[int]:
        """How many state events each listener received."""
        return [len(stream.events()) for stream in self.streams]

    def delays(self) -> list[float]:
        """Seconds from each state event's ``time`` to its arrival, every listener's."""
        return [arrived - datetime.fromisoformat(json.loads(event.data)["time"]).timestamp()
                for stream in self.streams for arrived, event in stream.frames
                if event.event == "state"]

    def close(self, base: str) -> None:
        """Stop reading, hang up every listener, and return once the server serves a new
        stream again, so that the next window starts on a settled server."""
        from tests.events.rawstream import RawStream, pump

        self._stop.set()
        self._reader.join(5)
        for stream in self.streams:
            stream.close()
        port = urlsplit(base).port or 80
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = RawStream(port)
            pump([probe], functools.partial(_answered, [probe]), timeout=30)
            probe.close()
            if probe.opened:
                break
            time.sleep(0.2)
        time.sleep(1.0)


def _answered(streams: list[Any]) -> bool:
    """Whether every stream began or was answered otherwise (a 503) or closed."""
    return all(s.opened or s.status not in (None, 200) or s.closed for s in streams)


def run(args: argparse.Namespace) -> list[Outcome]:
    """Both parts: polling against events, then the create rate with listeners."""
    polling = run_polling(args) if args.part in ("both", "polling") else []
    return polling + (run_listeners(args) if args.part in ("both", "listeners") else [])


def run_polling(args: argparse.Namespace) -> list[Outcome]:
    """Polling clients against one events client (see the module doc)."""
    from tests.private_services import PrivateRedis

    scratch = Scratch(args.database, keep=args.keep)
    redis = PrivateRedis(scratch.dir / "redis").start()
    try:
        tes = tes_gunicorn(scratch.dir / "tes", scratch.database("events"), redis.url)
        with running(tes):
            ids = create_tasks(tes.base, BODY, args.tasks, "bench_events")
            to_change = list(ids)
            changes = Changes(tes.base, to_change, args.change_rate)
            rate = args.tasks / args.poll_every
            print(f"bench_events: {args.tasks} active tasks, {args.change_rate:g} state changes/s;"
                  f" polling = every task every {args.poll_every:g} s ({rate:g} GET/s); "
                  f"{args.seconds:g} s per window; gunicorn + Redis")
            changes.window(2.0)  # warm-up
            idle = _window(tes.pid, changes, args.seconds)
            result: dict[str, object] = {}

            def polls() -> None:
                result["load"] = run_load(
                    tes.base, [f"{API}/tasks/{task_id}" for task_id in ids], connections=16,
                    duration=args.seconds, warmup=0.0, rate=rate, max_requests=10**7)

            poller = threading.Thread(target=polls)
            poller.start()
            polling = _window(tes.pid, changes, args.seconds)
            poller.join()
            follower = Follower(tes.url)
            follower.start()
            time.sleep(0.5)
            events = _window(tes.pid, changes, args.seconds)
            time.sleep(2.0)  # the last changes' events
            received = follower.events
            hang_up(follower.response)
    finally:
        redis.stop()
        scratch.close()
    load = result["load"]
    poll_rps = load.all_requests / args.seconds  # type: ignore[attr-defined]
    events_rps = 1 / args.seconds
    rows = (("idle", idle, 0.0), ("polling", polling, poll_rps), ("events", events, events_rps))
    for name, (cpu, made), rps in rows:
        print(f"  {name:<8} {rps:8.2f} req/s  server CPU {cpu / args.seconds:6.3f} s/s  "
              f"{made} changes")
    print(f"  events client: {received} state events for {events[1]} changes")
    follow_poll = max(polling[0] - idle[0], 1e-3)
    follow_events = max(events[0] - idle[0], 0.0)
    cpu_ratio = follow_events / follow_poll
    req_ratio = poll_rps / events_rps
    print(f"  requests/s polling / events: {req_ratio:.0f}x; server CPU of following, "
          f"events / polling: {cpu_ratio:.3f} ({follow_events:.2f} s vs {follow_poll:.2f} s)")
    label, passed = at_most(cpu_ratio, TARGET)
    complete = received >= events[1]
    note = (f"{req_ratio:.0f}x fewer requests/s ({poll_rps:.1f} vs {events_rps:.2f}); "
            f"events client got {received} of {events[1]} changes; "
            f"poll p99 {load.p99_ms:.1f} ms, errors {load.errors}")  # type: ignore[attr-defined]
    return [Outcome("events", "server CPU following N tasks: events vs polling",
                    follow_poll, follow_events, "cpu s", cpu_ratio, label,
                    passed and complete, note)]


def run_listeners(args: argparse.Namespace) -> list[Outcome]:
    """The create rate with ``--listeners`` streams open against none (see the module doc)."""
    from bench._common import GunicornServer
    from tests.private_services import PrivateRedis

    scratch = Scratch(args.database, keep=args.keep)
    redis = PrivateRedis(scratch.dir / "redis").start()
    body = scratch.dir / "task.json"
    body.write_bytes(BODY)
    threads = args.listeners + 28
    try:
        tes = tes_gunicorn(scratch.dir / "tes", scratch.database("listeners"), redis.url,
                           TES_EVENTS_MAX_CLIENTS=str(args.listeners))
        tes = GunicornServer(tes.name, "tes_core.app:create_app()", tes.env, workers="1",
                             threads=str(threads))
        with running(tes):
            windows = 2 * args.rounds
            count = int(args.change_rate * (args.seconds + 2) * windows) + 50
            ids = create_tasks(tes.base, BODY, count, "bench_events")
            changes = Changes(tes.base, ids, args.change_rate, tes.pid)
            print(f"bench_events: create rate with {args.listeners} listeners vs none, "
                  f"{args.change_rate:g} changes/s; one gunicorn process, {threads} threads; "
                  f"{args.rounds} rounds of each, ABBA order, {args.seconds:g} s each")
            machine_load("before")
            crowds: list[tuple[Crowd, int]] = []

            def alone() -> Creates:
                return _creates(tes.base, body, changes, args.seconds)

            def crowded() -> Creates:
                crowd = Crowd(tes.base, args.listeners)
                time.sleep(1.0)
                measured_creates = _creates(tes.base, body, changes, args.seconds)
                time.sleep(2.0)  # the last changes' events
                crowd.close(tes.base)
                crowds.append((crowd, measured_creates.changes))
                return measured_creates

            try:
                without, with_listeners = interleave(args.rounds, alone, crowded)
            except BaseException:
                print(f"bench_events: failed; the server's last lines:\n{tes.log()[-4000:]}")
                raise
            machine_load("after")
    finally:
        redis.stop()
        scratch.close()
    base = median([r.rate for r in without])
    ours = median([r.rate for r in with_listeners])
    ratio = ours / base if base else 0.0
    delays = sorted(d for crowd, _ in crowds for d in crowd.delays())
    got_all = all(n == changed for crowd, changed in crowds for n in crowd.counts())
    p50 = delays[len(delays) // 2] * 1000 if delays else float("nan")
    p99 = delays[int(len(delays) * 0.99)] * 1000 if delays else float("nan")
    print(f"  creates/s without listeners {[round(r.rate, 1) for r in without]}, with "
          f"{[round(r.rate, 1) for r in with_listeners]} (medians {base:.1f} vs {ours:.1f}, "
          f"{sum(r.count for r in without)} and {sum(r.count for r in with_listeners)} "
          f"creates); ratio of medians {ratio:.2f}")
    print(f"  server CPU per create: without {_cpu_per_create(without):.0f} us, with "
          f"{_cpu_per_create(with_listeners):.0f} us (the listeners' share included)")
    print(f"  delivery latency p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(delays)} "
          f"deliveries; every listener got every change: {got_all}")
    label, passed = at_least(ratio, CREATE_TARGET)
    return [Outcome("events", f"create rate with {args.listeners} listeners vs none",
                    base, ours, "req/s", ratio, label, passed and got_all,
                    f"medians of {args.rounds} ABBA rounds; delivery p50 {p50:.1f} ms, "
                    f"p99 {p99:.1f} ms; every listener got every change: {got_all}")]


@dataclass(frozen=True)
class Creates:
    """One window of creates."""

    rate: float
    count: int
    server_cpu_s: float
    changes: int


def _cpu_per_create(windows: list[Creates]) -> float:
    count = sum(w.count for w in windows)
    return sum(w.server_cpu_s for w in windows) / count * 1e6 if count else float("nan")


def _creates(base: str, body: Path, changes: Changes, seconds: float) -> Creates:
    """Creates per second for ``seconds`` (8 connections) while changes go on."""
    result: dict[str, Load] = {}

    def load() -> None:
        result["load"] = run_load(base, [f"{API}/tasks"], method="POST", body_file=body,
                                  connections=8, duration=seconds, warmup=1.0,
                                  server_pid=changes.pid)

    thread = threading.Thread(target=load)
    thread.start()
    made = changes.window(seconds + 1.0)
    thread.join()
    done = result["load"]
    if done.errors:
        raise SystemExit(f"bench_events: creates failed: {done.first_error}")
    return Creates(done.rps, done.all_requests, done.server_cpu_s, made)


def _window(pid: int, changes: Changes, seconds: float) -> tuple[float, int]:
    """Server CPU seconds used and changes made during one window."""
    before = process_cpu(pid)
    made = changes.window(seconds)
    return process_cpu(pid) - before, made


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
