"""The capped live copy of an executor's output (:mod:`tes_runner.runtimes.rolling`): it
never holds more than its cap, keeps the end, and a reader in another thread always gets
a true end of what was written, across the rolls."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tes_filetransfer.beneath import UnsafePath

from tes_runner.runtimes import rolling
from tes_runner.runtimes._capture import run_captured
from tes_runner.runtimes.rolling import RollingFile, read, read_end


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _numbers(first: int, last: int) -> bytes:
    return b"".join(b"%d\n" % i for i in range(first, last + 1))


def _on_disk(tmp_path: Path) -> int:
    return sum(p.stat().st_size for p in tmp_path.iterdir())


def test_the_copy_stays_under_its_cap_and_keeps_the_end(tmp_path, folder):
    data = _numbers(1, 20_000)  # 108,894 bytes through a 1,000-byte cap
    with RollingFile(folder, "out", 1000).open() as writer:
        for start in range(0, len(data), 777):
            writer.write(data[start : start + 777])
            assert _on_disk(tmp_path) <= 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.217"]  # 500 bytes each
    assert read_end(folder, "out", 500) == data[-500:]
    assert read_end(folder, "out", 10**9) == data[-len(read_end(folder, "out", 10**9)) :]
    assert len(read_end(folder, "out", 10**9)) >= 500  # at least half the cap is kept
    assert read_end(folder, "missing", 100) == b""


def test_reading_from_an_offset_follows_the_stream_across_rolls(folder):
    data = _numbers(1, 2000)  # 8,893 bytes through a 100-byte cap
    got = b""
    offset = 0
    with RollingFile(folder, "out", 100).open() as writer:
        for start in range(0, len(data), 7):
            writer.write(data[start : start + 7])
            first, chunk = read(folder, "out", 1000, offset)
            assert first == offset  # read often enough: nothing was lost
            got += chunk
            offset = first + len(chunk)
    assert got == data
    first, chunk = read(folder, "out", 30, 0)  # asked for what is gone: the earliest kept
    assert first == (len(data) // 50 - 1) * 50 and chunk == data[first : first + 30]
    assert read(folder, "out", 30, len(data)) == (len(data), b"")
    assert read(folder, "out", 30, len(data) + 5) == (len(data), b"")
    assert read(folder, "out", 30) == (len(data) - 30, data[-30:])


def test_opening_again_forgets_the_previous_run(tmp_path, folder):
    with RollingFile(folder, "out", 10).open() as writer:
        writer.write(b"0123456789abcdef")
    with RollingFile(folder, "out", 10).open() as writer:
        writer.write(b"xy")
    assert read_end(folder, "out", 100) == b"xy"


WRITER = """
import os, sys
from tes_runner.runtimes.rolling import RollingFile
folder = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
with RollingFile(folder, "out", 128).open() as writer:
    for i in range(1, int(sys.argv[2]) + 1):
        writer.write(b"%d\\n" % i)
"""


def test_a_reader_always_gets_a_true_end_while_it_rolls(tmp_path, folder):
    """A writer in another process rolls every 64 bytes; every read must be a contiguous
    run of numbers: never a gap, a repeat or a stale piece (reading the two files without
    checking for a roll in between fails this)."""
    total = 30_000
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(total)])
    reads = 0
    try:
        while writer.poll() is None or reads < 10:
            end = read_end(folder, "out", 64)
            lines = end.split(b"\n")[1:-1]  # the first and last may be cut
            if len(lines) < 2:
                continue
            numbers = [int(line) for line in lines]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), end
            reads += 1
    finally:
        writer.wait()
    assert writer.returncode == 0
    assert read_end(folder, "out", 64).endswith(b"\n%d\n" % total)


def test_a_roll_while_the_reader_opens_the_files_is_noticed(folder, monkeypatch):
    """The writer rolls twice right after the reader opened the current file: the reader
    must notice and read the new pair, not the stale file it holds."""
    writer = RollingFile(folder, "out", 20).open()  # 10 bytes a file
    writer.write(b"0123456789abcde")  # out.1 = 0123456789, out = abcde
    real_open = rolling._open
    opened: list[str] = []

    def racing(folder_fd: int, name: str, stack: Any) -> int | None:
        fd = real_open(folder_fd, name, stack)
        opened.append(name)
        if len(opened) == 1:
            writer.write(b"fghijKLMNOPQRSTUVWXYZ")  # out.3 = KLMNOPQRST, out = UVWXYZ
        return fd

    monkeypatch.setattr(rolling, "_open", racing)
    assert read_end(folder, "out", 12) == b"OPQRSTUVWXYZ"
    assert len(opened) > 3  # it did open the files again
    writer.close()


def test_a_link_in_place_of_either_file_is_refused(tmp_path, folder):
    (tmp_path / "secret").write_text("root:x:0:0")
    os.symlink(tmp_path / "secret", tmp_path / "out")
    with pytest.raises(UnsafePath):
        read_end(folder, "out", 100)
    os.unlink(tmp_path / "out")
    os.symlink(tmp_path / "secret", tmp_path / "out.3")
    (tmp_path / "out").write_text("x")
    with pytest.raises(UnsafePath):
        read_end(folder, "out", 100)
    with RollingFile(folder, "out", 10).open() as writer:  # the writer removes the link
        writer.write(b"fresh")
    assert (tmp_path / "secret").read_text() == "root:x:0:0"
    assert read_end(folder, "out", 100) == b"fresh"


def test_a_child_writing_past_the_cap_through_run_captured(tmp_path, folder):
    """The runtimes' capture: the rolling copy holds the end, the plain file every byte,
    and the tail kept for the executor log is the end too."""
    script = "import sys\nfor i in range(1, 100001): sys.stdout.write(f'{i}\\n')\n"
    full = tmp_path / "full"
    captured = run_captured(
        [sys.executable, "-c", script + "sys.stderr.write(sys.stdin.read())"],
        stdin_path=Path(os.devnull),
        stdout_path=RollingFile(folder, "live", 4096),
        stderr_path=full,
    )
    data = _numbers(1, 100_000)
    assert captured.returncode == 0
    assert _on_disk(tmp_path) <= 4096  # "full" holds stderr so far: the empty stdin
    assert read_end(folder, "live", 2048) == data[-2048:]
    assert captured.stdout_tail.encode() == data[-len(captured.stdout_tail.encode()) :]
    assert len(captured.stdout_tail) == 10 * 1024
    both = run_captured([sys.executable, "-c", script], stdout_path=full)
    assert both.returncode == 0 and full.read_bytes() == data
