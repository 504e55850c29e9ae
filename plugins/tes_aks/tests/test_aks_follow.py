"""The executor pod's ``stderr`` container program (:mod:`tes_aks.follow`), on real files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
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
