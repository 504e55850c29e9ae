""":class:`tes_batch.live.LiveOutput` against the runner's real rolling files: the same
bytes as the local read (:func:`tes_runner.runtimes.rolling.read`) for every offset and
limit, a roll between its requests answered consistently, and answers kept for readers
of the same stream. The Batch file API is a stand-in serving the folder (the requests'
form is checked on the fake Batch service in ``test_batch_live.py``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tes_core.backends.base import NoLiveOutput
from tes_runner.runtimes import rolling

from tes_batch.live import LiveOutput, output_path

PATH = output_path(0, "stdout")
NAME = PATH.rsplit("/", 1)[1]


class Files:
    """The node's ``logs`` folder behind ``list_files``/``read_range``; ``before_range`` runs
    before each ranged read (to roll the files between the requests)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[str] = []
        self.before_range: Callable[[], None] = lambda: None
        self.gone = False

    def list_files(self, job: str, task: str, prefix: str, **options: object) -> dict[str, int]:
        assert prefix == PATH and (job, task) == ("job-1", "t-1")
        self.calls.append("list")
        if self.gone:
            from tes_batch.client import BatchApiError

            raise BatchApiError("TaskNotFound: The specified task does not exist.",
                                "TaskNotFound", 404)
        base = PATH.rsplit("/", 1)[0]
        return {f"{base}/{p.name}": p.stat().st_size for p in self.folder.iterdir()
                if p.name.startswith(NAME)}

    def read_range(self, job: str, task: str, path: str, at: int, count: int,
                   **options: object) -> bytes | None:
        self.calls.append(f"get {path.rsplit('/', 1)[1]} {at}+{count}")
        self.before_range()
        target = self.folder / path.rsplit("/", 1)[1]
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            return None
        return None if at >= len(data) and data else data[at:at + count]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Files, rolling.RollingWriter, int]]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with rolling.RollingFile(fd, NAME, 64).open() as writer:
            yield Files(tmp_path), writer, fd
    finally:
        os.close(fd)


def test_same_bytes_as_the_local_read_for_every_offset_and_limit(files) -> None:
    api, writer, fd = files
    live = LiveOutput(api, ttl=0)  # type: ignore[arg-type]
    stream = b"".join(b"line-%02d\n" % i for i in range(25))  # 200 bytes, cap 64: rolled
    for chunk in (stream[:5], stream[5:40], stream[40:]):
        writer.write(chunk)
        for offset in (None, 0, 10, 31, 32, 100, 150, 168, 199, 200, 300):
            for limit in (1, 7, 32, 33, 64, 1000):
                expected = rolling.read(fd, NAME, limit, offset)
                got = live.read("job-1", "t-1", 0, "stdout", limit, offset)
                assert (got.first, got.data) == expected, (offset, limit)
    piece = live.read("job-1", "t-1", 0, "stdout", 1000, 0)
    assert piece.first == 160 and piece.data == stream[160:]  # the last two halves of 32


def test_a_roll_between_the_listing_and_the_read_is_read_again(files) -> None:
    api, writer, _ = files
    live = LiveOutput(api, ttl=0)  # type: ignore[arg-type]
    writer.write(b"a" * 32 + b"b" * 10)  # rolled once: NAME.1 = a*32, NAME = b*10
    rolls = iter([lambda: writer.write(b"c" * 22 + b"d" * 5)])  # NAME.2 = b*10 c*22, NAME = d*5

    def roll_once() -> None:
        step = next(rolls, None)
        if step:
            step()

    api.before_range = roll_once
    piece = live.read("job-1", "t-1", 0, "stdout", 8, None)
    assert (piece.first, piece.data) == (64 + 5 - 8, b"c" * 3 + b"d" * 5)
    # list, the stale read (NAME now holds d*5: short), list again, read both, list
    assert api.calls[0] == "list" and api.calls.count("list") == 3, api.calls


def test_rolling_on_every_request_gives_up_with_a_reason(files) -> None:
    api, writer, _ = files
    live = LiveOutput(api, ttl=0)  # type: ignore[arg-type]
    writer.write(b"x" * 40)
    api.before_range = lambda: writer.write(b"y" * 32)
    with pytest.raises(NoLiveOutput, match="rolls over faster than it can be read"):
        live.read("job-1", "t-1", 0, "stdout", 8, None)


def test_nothing_new_since_the_offset_is_one_request(files) -> None:
    api, writer, _ = files
    writer.write(b"hello\n")
    live = LiveOutput(api, ttl=0)  # type: ignore[arg-type]
    piece = live.read("job-1", "t-1", 0, "stdout", 100, 6)
    assert (piece.first, piece.data, api.calls) == (6, b"", ["list"])


def test_a_gone_task_is_no_live_output(files) -> None:
    api, _, _ = files
    api.gone = True
    with pytest.raises(NoLiveOutput, match="Batch task t-1 is gone"):
        LiveOutput(api, ttl=0).read("job-1", "t-1", 0, "stdout", 10, None)  # type: ignore[arg-type]


def test_readers_of_one_stream_share_one_read_within_the_ttl(files) -> None:
    api, writer, _ = files
    writer.write(b"0123456789")
    live = LiveOutput(api, ttl=3600)  # type: ignore[arg-type]
    answers = []

    def read() -> None:
        answers.append(live.read("job-1", "t-1", 0, "stdout", 4, None))

    threads = [threading.Thread(target=read) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {(a.first, a.data) for a in answers} == {(6, b"6789")}
    assert api.calls == ["list", "get executor-0.stdout 6+4", "list"]
    # a part of what was read: no request; more than was read: a new one
    assert live.read("job-1", "t-1", 0, "stdout", 2, 7).data == b"78"
    assert live.read("job-1", "t-1", 0, "stdout", 100, 10).data == b""
    assert len(api.calls) == 3
    assert live.read("job-1", "t-1", 0, "stdout", 6, None).data == b"456789"
    assert len(api.calls) == 6
