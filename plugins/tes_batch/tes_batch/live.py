"""A running executor's live output, read from its node through the Batch file API.

The runner on the node keeps the end of each executor output stream the task names no file
for in ``wd/tes/work/logs`` of the Batch task's folder: ``executor-N.stdout`` and the roll
before it, ``executor-N.stdout.K`` (:mod:`tes_runner.runtimes.rolling`). One read is

1. ``GET /jobs/{job}/tasks/{task}/files?recursive=true&$filter=startswith(name,'<path>')``:
   both files and their sizes (the roll number is in the name), so the stream's offsets are
   known (:func:`~tes_runner.runtimes.rolling.span`, as the local read works them out);
   nothing new since the offset asked: answered from this alone;
2. one ranged ``GET .../files/<path>`` (``ocp-range: bytes=a-b``) per file the answer
   lies in (a rolled file never changes again);
3. when ``NAME`` was read: the listing again. If the roll number is the same, no roll
   happened since step 1 and the bytes are consistent; else (a roll renamed ``NAME``
   meanwhile, or a file was missing or short) steps 2 and 3 are done once more with the
   new listing, and if the stream rolled again, the read fails (404, "try again").

Every path is built from the server's own ids (job and Batch task from the attempt's
reference) and the runner's fixed layout, never from the task document. The ``logs``
folder is the runner's, outside ``/tes-wd``: no executor can put a link there.

Clients follow output every half second (``tes logs --follow``); each answer is kept
``TES_BATCH_OUTPUT_CACHE`` seconds per (task, executor, stream) in each API process and
concurrent reads of one stream wait for one another, so N clients following one task make
the requests of one, per process and per that many seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tes_core.backends.base import NoLiveOutput, OutputPiece
from tes_runner.runtimes import rolling
from tes_runner.taskfile import WORK_FOLDER
from tes_runner.workspace import LOGS, output_name

from .client import BatchApi, BatchApiError
from .taskspec import TASK_DIR

LOGS_PATH = f"wd/{TASK_DIR}/{WORK_FOLDER}/{LOGS}"
"""The runner's live-output folder, as the Batch file API names it."""
REQUEST_OPTIONS = {"retry_total": 1, "connection_timeout": 10, "read_timeout": 20}
"""A client waits for the answer: one retry, short timeouts (not the pass's patience)."""
MAX_ENTRIES = 1000
"""Streams whose last answer is kept; beyond it, answers older than the TTL are dropped."""


def output_path(index: int, stream: str) -> str:
    """The path of executor ``index``'s live ``stream`` under the Batch task's folder."""
    return f"{LOGS_PATH}/{output_name(index, stream)}"


@dataclass(frozen=True)
class _Kept:
    """The last answer for one stream: ``data`` from byte ``first``, when the stream kept
    bytes ``earliest`` to ``end`` (its end then); read at ``at`` (monotonic)."""

    at: float
    first: int
    data: bytes
    earliest: int
    end: int

    def answer(self, limit: int, offset: int | None) -> OutputPiece | None:
        """The answer to (``limit``, ``offset``) from these bytes, or ``None`` if they do
        not hold it."""
        first = max(self.end - limit if offset is None else offset, self.earliest)
        if first >= self.end:
            return OutputPiece(min(first, self.end), b"")
        stop = min(first + limit, self.end)
        if self.first <= first and stop <= self.first + len(self.data):
            return OutputPiece(first, self.data[first - self.first : stop - self.first])
        return None


class LiveOutput:
    """Reads executors' live output from Batch nodes, keeping each answer ``ttl`` seconds."""

    def __init__(self, api: BatchApi, ttl: float) -> None:
        self.api = api
        self.ttl = ttl
        self._kept: dict[tuple[str, int, str], _Kept] = {}
        self._locks: dict[tuple[str, int, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def read(self, job: str, name: str, index: int, stream: str, limit: int,
             offset: int | None) -> OutputPiece:
        """At most ``limit`` bytes of executor ``index``'s live ``stream`` in Batch task
        ``name`` of ``job``, from byte ``offset`` or its end (as ``Backend.read_output``).
        Raises :class:`NoLiveOutput` saying why it cannot be read."""
        key = (f"{job}/{name}", index, stream)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # a second reader of the stream waits and takes the first one's answer
            kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept.at < self.ttl:
                piece = kept.answer(limit, offset)
                if piece is not None:
                    return piece
            kept = self._fetch(job, name, output_path(index, stream), limit, offset)
            self._keep(key, kept)
        # what was fetched is the answer (``span`` and ``answer`` agree)
        return kept.answer(limit, offset) or OutputPiece(kept.first, kept.data)

    def _keep(self, key: tuple[str, int, str], kept: _Kept) -> None:
        with self._lock:
            self._kept[key] = kept
            if len(self._kept) > MAX_ENTRIES:
                now = time.monotonic()
                self._kept = {k: v for k, v in self._kept.items() if now - v.at < self.ttl}
                self._locks = {k: v for k, v in self._locks.items()
                               if k in self._kept or v.locked()}

    def _fetch(self, job: str, name: str, path: str, limit: int,
               offset: int | None) -> _Kept:
        """Steps 1 to 3 of the module's description."""
        listing = self._list(job, name, path)
        for _ in range(2):
            rolls, kept = _last_roll(listing, path)
            where = rolling.span(rolls, kept, listing.get(path, 0), limit, offset)
            data = self._ranges(job, name, path, rolls, where)
            answer = _Kept(time.monotonic(), where.first, data or b"", where.earliest, where.end)
            if data is not None and not where.current[1]:
                return answer  # nothing, or only from a rolled file, which never changes
            again = self._list(job, name, path)
            if data is not None and _last_roll(again, path)[0] == rolls:
                return answer  # no roll since the listing: NAME was the file listed
            listing = again
        raise NoLiveOutput(f"the output of Batch task {name} rolls over faster than it can be "
                           "read; try again")

    def _ranges(self, job: str, name: str, path: str, rolls: int,
                where: rolling.Span) -> bytes | None:
        """The bytes of ``where`` (the rolled file's, then ``NAME``'s); ``None`` if a file is
        gone or shorter than listed (it rolled meanwhile)."""
        data = b""
        for file, (at, count) in ((rolling.rolled_name(path, rolls), where.previous),
                                  (path, where.current)):
            if count:
                got = self._range(job, name, file, at, count)
                if got is None or len(got) < count:
                    return None
                data += got
        return data

    def _list(self, job: str, name: str, path: str) -> dict[str, int]:
        try:
            return self.api.list_files(job, name, path, **REQUEST_OPTIONS)
        except BatchApiError as exc:
            raise NoLiveOutput(_why(name, exc)) from None

    def _range(self, job: str, name: str, path: str, at: int, count: int) -> bytes | None:
        try:
            return self.api.read_range(job, name, path, at, count, **REQUEST_OPTIONS)
        except BatchApiError as exc:
            raise NoLiveOutput(_why(name, exc)) from None


def _last_roll(listing: dict[str, int], path: str) -> tuple[int, int]:
    """The number of the last rolled file of ``path`` in ``listing`` (0: none) and its size."""
    rolls = {n: size for file, size in listing.items()
             if (n := rolling.roll_number(file, path)) is not None}
    if not rolls:
        return 0, 0
    last = max(rolls)
    return last, rolls[last]


def _why(name: str, exc: BatchApiError) -> str:
    """Why a Batch task's files cannot be read, for the 404."""
    if exc.status == 404:
        return (f"Batch task {name} is gone (or its node is), so its live output is too: "
                f"{exc}")
    if exc.status == 409:
        return f"Batch task {name} has not started on a node yet: {exc}"
    return f"Batch did not answer for the live output of task {name}: {exc}"
