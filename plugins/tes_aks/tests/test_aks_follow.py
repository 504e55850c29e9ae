"""The executor pod's ``stderr`` container program (:mod:`tes_aks.follow`), on real files."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tes_aks import follow, manifests


def test_follow_copies_what_is_written_until_done(tmp_path: Path) -> None:
    path, done = tmp_path / "stderr", tmp_path / "done"
    out = io.BytesIO()
    steps = iter([b"first\n", b"second\n", None])

    def sleep(_: float) -> None:  # the executor writes between two looks, then ends
        chunk = next(steps)
        if chunk is None:
            done.touch()
        else:
            with path.open("ab") as file:
                file.write(chunk)

    follow.follow(str(path), str(done), out, sleep=sleep)
    assert out.getvalue() == b"first\nsecond\n"


def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("token")
    os.symlink(tmp_path / "secret", tmp_path / "stderr")
    (tmp_path / "done").touch()
    out = io.BytesIO()
    follow.follow(str(tmp_path / "stderr"), str(tmp_path / "done"), out)
    follow.tail_at_end(str(tmp_path / "stderr"), str(tmp_path / "done"), out, 100)
    assert out.getvalue() == b""


def test_the_manifest_runs_this_source_with_python_c(tmp_path: Path) -> None:
    (tmp_path / "own.txt").write_bytes(b"x" * 50 + b"the end\n")
    (tmp_path / "done").touch()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            manifests._FOLLOW_SOURCE,
            str(tmp_path / "own.txt"),
            str(tmp_path / "done"),
            "--at-end",
            "8",
        ],
        capture_output=True,
        check=True,
    )
    assert done.stdout == b"the end\n"
    bad = subprocess.run([sys.executable, "-c", manifests._FOLLOW_SOURCE], capture_output=True)
    assert bad.returncode == 2 and b"usage" in bad.stderr


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def test_the_wrapper_passes_sigterm_on_and_marks_the_end(tmp_path: Path) -> None:
    """A cancel's SIGTERM reaches the executor through the wrapper, which still marks the
    end (so the stderr container ends) and exits with the executor's status."""
    command = manifests.executor_command(
        {"command": ["sh", "-c", "echo started >&2; exec sleep 60"]}
    )
    # /.tes-aks is the pod's emptyDir: a folder of the test bound there
    proc = subprocess.Popen(
        [
            "bwrap",
            "--dev-bind",
            "/",
            "/",
            "--bind",
            str(tmp_path),
            manifests.LOG_MOUNT,
            "--die-with-parent",
            *command,
        ]
    )
    try:
        for _ in range(200):
            if (tmp_path / "stderr").exists() and (tmp_path / "stderr").read_text():
                break
            time.sleep(0.05)
        assert (tmp_path / "stderr").read_text() == "started\n"
        [wrapper] = _children(proc.pid)
        os.kill(wrapper, signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert (tmp_path / "done").exists()
