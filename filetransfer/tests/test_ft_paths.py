from __future__ import annotations

import os
from pathlib import Path

import pytest

from tes_filetransfer import TransferError
from tes_filetransfer.paths import check_container_path, host_path, resolve_in_root


def test_host_path_strips_leading_slash(tmp_path: Path) -> None:
    assert host_path(tmp_path, "/data/x.txt") == tmp_path / "data" / "x.txt"


@pytest.mark.parametrize("bad", ["data/x", "", None, "/data/../etc/passwd"])
def test_check_container_path_rejects(bad: object) -> None:
    with pytest.raises(TransferError, match="input 'a'"):
        check_container_path(bad, "input 'a'")


def test_absolute_symlink_is_resolved_inside_root(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real.txt").write_text("x")
    os.symlink("/data/real.txt", tmp_path / "data" / "link.txt")
    assert resolve_in_root(tmp_path, "/data/link.txt") == tmp_path / "data" / "real.txt"


def test_symlink_cannot_escape_root(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.symlink("../../../../etc", tmp_path / "data" / "up")
    resolved = resolve_in_root(tmp_path, "/data/up/hostname")
    assert resolved == tmp_path / "etc" / "hostname"


def test_symlink_loop_raises(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(TransferError, match="too many levels"):
        resolve_in_root(tmp_path, "/a")
