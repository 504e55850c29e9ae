from __future__ import annotations

import importlib.metadata
import logging
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tes_filetransfer import TransferError, register_storage, stage_inputs, upload_outputs
from tes_filetransfer.storage import unregister_storage


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A folder standing for long-term storage on this machine."""
    folder = tmp_path / "store"
    folder.mkdir()
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    return folder


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.part")]


def test_plain_path_input_is_copied(src: Path, root: Path) -> None:
    (src / "a.txt").write_text("hello")
    lines = stage_inputs([{"url": str(src / "a.txt"), "path": "/data/in/a.txt"}], root)
    assert (root / "data/in/a.txt").read_text() == "hello"
    assert len(lines) == 1 and "/data/in/a.txt" in lines[0] and "5 bytes" in lines[0]
    # a copy, not a link: writing the staged file must not touch the source
    (root / "data/in/a.txt").write_text("changed")
    assert (src / "a.txt").read_text() == "hello"


def test_file_url_input_with_escaped_space(src: Path, root: Path) -> None:
    (src / "my file.txt").write_bytes(b"\x00\x01binary")
    url = "file://" + quote(str(src / "my file.txt"))
    stage_inputs([{"url": url, "path": "/x.bin", "type": "FILE"}], root)
    assert (root / "x.bin").read_bytes() == b"\x00\x01binary"


def test_file_url_with_remote_host_is_refused(root: Path) -> None:
    with pytest.raises(TransferError, match="must be local"):
        stage_inputs([{"url": "file://otherhost/x", "path": "/x"}], root)


def test_executable_bit_is_kept(src: Path, root: Path) -> None:
    script = src / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    stage_inputs([{"url": str(script), "path": "/bin/run.sh"}], root)
    assert os.stat(root / "bin/run.sh").st_mode & stat.S_IXUSR


def test_inline_content_200_kib(root: Path) -> None:
    text = ("héllo wörld ✓ " * 20000)[: 200 * 1024]
    lines = stage_inputs(
        [{"content": text, "url": "https://ignored.invalid/x", "path": "/data/c.txt",
          "name": "script"}],
        root,
    )
    assert (root / "data/c.txt").read_text(encoding="utf-8") == text
    assert len(text.encode()) > 200 * 1024
    assert "inline content" in lines[0] and "'script'" in lines[0]


def test_empty_content_with_url_downloads_url(src: Path, root: Path) -> None:
    (src / "a.txt").write_text("from url")
    stage_inputs([{"content": "", "url": str(src / "a.txt"), "path": "/a.txt"}], root)
    assert (root / "a.txt").read_text() == "from url"


def test_empty_content_without_url_writes_empty_file(root: Path) -> None:
    stage_inputs([{"content": "", "path": "/empty"}], root)
    assert (root / "empty").read_bytes() == b""


def test_directory_input_copies_tree(src: Path, root: Path) -> None:
    tree = src / "ref"
    (tree / "sub/deeper").mkdir(parents=True)
    (tree / "empty").mkdir()
    (tree / "top.txt").write_text("1")
    (tree / "sub/mid.txt").write_text("2")
    (tree / "sub/deeper/low.txt").write_text("3")
    lines = stage_inputs(
        [{"url": "file://" + str(tree), "path": "/ref", "type": "DIRECTORY"}], root
    )
    assert (root / "ref/top.txt").read_text() == "1"
    assert (root / "ref/sub/mid.txt").read_text() == "2"
    assert (root / "ref/sub/deeper/low.txt").read_text() == "3"
    assert (root / "ref/empty").is_dir()
    assert "3 files" in lines[0]


def test_file_input_that_is_a_directory_is_an_error(src: Path, root: Path) -> None:
    with pytest.raises(TransferError, match="set the input's type to DIRECTORY"):
        stage_inputs([{"url": str(src), "path": "/x"}], root)


def test_missing_local_file_names_input_and_leaves_nothing(src: Path, root: Path) -> None:
    with pytest.raises(TransferError) as info:
        stage_inputs(
            [{"name": "reads", "url": str(src / "nope.fq"), "path": "/data/r.fq"}], root
        )
    message = str(info.value)
    assert "input 'reads' (/data/r.fq)" in message
    assert str(src / "nope.fq") in message
    assert not (root / "data/r.fq").exists() and leftovers(root) == []


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ({"path": "/x"}, "neither 'url' nor 'content'"),
        ({"url": "relative/x", "path": "/x"}, "not an absolute path"),
        ({"url": "/x", "path": "data/x"}, "not absolute"),
        ({"url": "/x", "path": "/a/../x"}, "'..'"),
        ({"url": "/x", "path": "/x", "type": "SOCKET"}, "unknown"),
        ({"content": "x", "path": "/x", "type": "DIRECTORY"}, "set type FILE"),
    ],
)
def test_bad_inputs(root: Path, item: dict[str, Any], needle: str) -> None:
    with pytest.raises(TransferError, match="input") as info:
        stage_inputs([item], root)
    assert needle in str(info.value)


def test_unknown_scheme(root: Path) -> None:
    with pytest.raises(TransferError) as info:
        stage_inputs([{"url": "xyz://bucket/obj?sig=secret", "path": "/in/obj"}], root)
    message = str(info.value)
    assert "no storage handles scheme 'xyz'" in message
    assert "install the plugin that provides it" in message
    assert "xyz://bucket/obj" in message and "secret" not in message
    assert "input /in/obj" in message


def test_large_local_copy_logs_progress(
    src: Path, root: Path, caplog: pytest.LogCaptureFixture, fast_progress: None
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    (src / "big.bin").write_bytes(data)
    caplog.set_level(logging.INFO, logger="tes_filetransfer")
    stage_inputs([{"url": str(src / "big.bin"), "path": "/big.bin"}], root)
    assert (root / "big.bin").read_bytes() == data
    messages = [r.getMessage() for r in caplog.records if r.name == "tes_filetransfer"]
    assert any(m.startswith("start copy") for m in messages)
    assert any(m.startswith("progress copy") and "%" in m for m in messages)
    assert any(m.startswith("done copy") and "MB/s" in m for m in messages)


def test_local_outputs_to_plain_path_and_file_url(tmp_path: Path, root: Path) -> None:
    (root / "out").mkdir()
    (root / "out/a.txt").write_text("aaa")
    (root / "out/b.txt").write_text("bb")
    dest = tmp_path / "results"
    logs = upload_outputs(
        [
            {"path": "/out/a.txt", "url": str(dest / "deep/a.txt")},
            {"path": "/out/b.txt", "url": "file://" + str(dest / "b.txt"), "type": "FILE"},
        ],
        root,
    )
    assert (dest / "deep/a.txt").read_text() == "aaa"
    assert (dest / "b.txt").read_text() == "bb"
    assert logs == [
        {"url": str(dest / "deep/a.txt"), "path": "/out/a.txt", "size_bytes": "3"},
        {"url": "file://" + str(dest / "b.txt"), "path": "/out/b.txt", "size_bytes": "2"},
    ]


class MemoryStorage:
    """A toy store for the scheme ``mem://``."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {"mem://b/in.txt": b"from memory"}

    def download(self, url: str, dest: Path) -> int:
        dest.write_bytes(self.blobs[url])
        return len(self.blobs[url])

    def download_dir(self, url: str, dest: Path) -> int:
        raise TransferError("not supported")

    def upload(self, src: Path, url: str) -> int:
        self.blobs[url] = src.read_bytes()
        return len(self.blobs[url])


def test_register_storage_adds_a_scheme(root: Path) -> None:
    mem = MemoryStorage()
    register_storage("mem", mem)
    try:
        stage_inputs([{"url": "mem://b/in.txt", "path": "/in.txt"}], root)
        assert (root / "in.txt").read_text() == "from memory"
        logs = upload_outputs([{"path": "/in.txt", "url": "mem://b/out.txt"}], root)
        assert mem.blobs["mem://b/out.txt"] == b"from memory"
        assert logs[0]["size_bytes"] == "11"
    finally:
        unregister_storage("mem")
    with pytest.raises(TransferError, match="no storage handles scheme 'mem'"):
        stage_inputs([{"url": "mem://b/in.txt", "path": "/in.txt"}], root)


def test_register_storage_rejects_incomplete_objects() -> None:
    with pytest.raises(TypeError, match="has no download"):
        register_storage("half", object())  # type: ignore[arg-type]


def test_plugin_bug_becomes_transfer_error(root: Path) -> None:
    class Broken(MemoryStorage):
        def download(self, url: str, dest: Path) -> int:
            raise KeyError("https://x/y?sig=secret")

    register_storage("broken", Broken())
    try:
        with pytest.raises(TransferError) as info:
            stage_inputs([{"url": "broken://b/x", "path": "/x"}], root)
    finally:
        unregister_storage("broken")
    assert "KeyError" in str(info.value) and "secret" not in str(info.value)


def test_entry_point_plugin_is_loaded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "mem"

        def load(self) -> type[MemoryStorage]:
            return MemoryStorage

    def fake_entry_points(*, group: str, name: str) -> list[FakeEntryPoint]:
        assert group == "tes_filetransfer.storage"
        return [FakeEntryPoint()] if name == "mem" else []

    # The storage module imports importlib.metadata only when it looks a scheme up.
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    try:
        stage_inputs([{"url": "mem://b/in.txt", "path": "/in.txt"}], root)
    finally:
        unregister_storage("mem")
    assert (root / "in.txt").read_text() == "from memory"
