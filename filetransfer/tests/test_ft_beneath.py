"""Walking paths beneath a trusted folder: symlinks and special files are refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tes_filetransfer import TransferError, beneath, stage_inputs
from tes_filetransfer.beneath import UnsafePath


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    folder = tmp_path / "root"
    folder.mkdir()
    fd = beneath.open_root(folder)
    yield folder, fd
    os.close(fd)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def test_open_dir_creates_and_pins(root: tuple[Path, int]) -> None:
    folder, fd = root
    dir_fd = beneath.open_dir(fd, "a/b/c", create=True)
    try:
        (beneath.pinned(dir_fd) / "x.txt").write_text("hi")
        os.rename(folder / "a", folder / "moved")  # the pinned path follows the folder
        assert (beneath.pinned(dir_fd) / "x.txt").read_text() == "hi"
    finally:
        os.close(dir_fd)
    assert (folder / "moved/b/c/x.txt").read_text() == "hi"


@pytest.mark.parametrize("rel", ["link", "link/inner", "a/link", "a/link/deeper"])
def test_a_symlinked_folder_is_refused(
    root: tuple[Path, int], outside: Path, rel: str
) -> None:
    folder, fd = root
    (folder / "a").mkdir()
    (folder / "link").symlink_to(outside)
    (folder / "a/link").symlink_to("/")
    with pytest.raises(UnsafePath, match="is a symbolic link") as caught:
        beneath.open_dir(fd, rel, create=True)
    assert caught.value.rel in ("link", "a/link")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_dotdot_is_refused(root: tuple[Path, int]) -> None:
    with pytest.raises(UnsafePath, match=r"contains '\.\.'"):
        beneath.open_dir(root[1], "a/../..", create=True)


def test_open_file_refuses_links_and_special_files(
    root: tuple[Path, int], outside: Path
) -> None:
    folder, fd = root
    (folder / "out").mkdir()
    (folder / "out/link.txt").symlink_to(outside / "secret.txt")
    os.mkfifo(folder / "out/fifo")
    with pytest.raises(UnsafePath, match="symbolic link"):
        beneath.open_file(fd, "out/link.txt", write=True)
    with pytest.raises(UnsafePath, match="symbolic link"):
        beneath.open_file(fd, "out/link.txt")
    with pytest.raises(UnsafePath, match="special file"):  # would block a plain open()
        beneath.open_file(fd, "out/fifo")
    with pytest.raises(UnsafePath, match="special file"):
        beneath.open_file(fd, "out/fifo", write=True)
    with pytest.raises(UnsafePath, match="is a folder"):
        beneath.open_file(fd, "out", write=True)
    assert (outside / "secret.txt").read_text() == "secret"


def test_open_file_writes_and_truncates(root: tuple[Path, int]) -> None:
    folder, fd = root
    out = beneath.open_file(fd, "logs/stdout.txt", write=True, create_parents=True)
    with os.fdopen(out, "wb") as f:
        f.write(b"long first content")
    out = beneath.open_file(fd, "logs/stdout.txt", write=True)
    with os.fdopen(out, "wb") as f:
        f.write(b"short")
    assert (folder / "logs/stdout.txt").read_bytes() == b"short"
    with os.fdopen(beneath.open_file(fd, "logs/stdout.txt"), "rb") as f:
        assert f.read() == b"short"
    with pytest.raises(FileNotFoundError):
        beneath.open_file(fd, "logs/missing.txt")


def test_check_wants_the_expected_kind(root: tuple[Path, int], outside: Path) -> None:
    folder, fd = root
    (folder / "d").mkdir()
    (folder / "d/f.txt").write_text("x")
    (folder / "d/l").symlink_to(outside)
    beneath.check(fd, "d", beneath.DIR)
    beneath.check(fd, "d/f.txt", beneath.FILE)
    with pytest.raises(UnsafePath, match="is a file, not a folder"):
        beneath.check(fd, "d/f.txt", beneath.DIR)
    with pytest.raises(UnsafePath, match="is a folder, not a file"):
        beneath.check(fd, "d", beneath.FILE)
    with pytest.raises(UnsafePath, match="symbolic link"):
        beneath.check(fd, "d/l", beneath.DIR)
    with pytest.raises(UnsafePath, match="symbolic link"):
        beneath.check(fd, "d/l/secret.txt", beneath.FILE)


def test_staging_never_writes_through_a_planted_link(tmp_path: Path, outside: Path) -> None:
    """An earlier task left ``data`` as a link in a shared folder: staging refuses it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data").symlink_to(outside)
    (shared / "file.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(TransferError, match="/data is a symbolic link: executors must not"):
        stage_inputs([{"path": "/data/new.txt", "content": "written"}], shared)
    # A link as the last component is replaced, never written through.
    stage_inputs([{"path": "/file.txt", "content": "mine"}], shared)
    assert (shared / "file.txt").read_text() == "mine" and not (shared / "file.txt").is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_reading_pins_the_file_it_checked(root: tuple[Path, int], outside: Path) -> None:
    folder, _ = root
    (folder / "out").mkdir()
    (folder / "out/result.txt").write_text("result")
    with beneath.reading(folder, "out/result.txt") as src:
        # Swapped for a link after the check: the pinned path still reads the real file.
        os.rename(folder / "out", folder / "old")
        (folder / "out").symlink_to(outside)
        (outside / "result.txt").write_text("host file")
        assert src.read_text() == "result"
    with pytest.raises(UnsafePath, match="symbolic link"):
        beneath.reading(folder, "out/result.txt").__enter__()
