from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tes_filetransfer import TransferError, register_storage, stage_inputs, upload_outputs
from tes_filetransfer.storage import HttpStorage


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    return folder


def ft_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tes_filetransfer"]


def test_download(http_server: Any, root: Path) -> None:
    (http_server.root / "dir").mkdir()
    (http_server.root / "dir/a.txt").write_bytes(b"over http")
    lines = stage_inputs([{"url": http_server.url("dir/a.txt"), "path": "/in/a.txt"}], root)
    assert (root / "in/a.txt").read_bytes() == b"over http"
    assert "9 bytes" in lines[0]
    assert http_server.count("GET", "/dir/a.txt") == 1


def test_big_download_retries_after_500_and_logs_progress(
    http_server: Any, root: Path, caplog: pytest.LogCaptureFixture, fast_progress: None
) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)
    (http_server.root / "big.bin").write_bytes(data)
    http_server.plan["/big.bin"] = [500]
    caplog.set_level(logging.INFO, logger="tes_filetransfer")
    stage_inputs([{"url": http_server.url("big.bin"), "path": "/data/big.bin"}], root)
    assert (root / "data/big.bin").read_bytes() == data
    assert http_server.count("GET", "/big.bin") == 2
    messages = ft_messages(caplog)
    assert any("HTTP 500" in m and "attempt 1 of 3" in m for m in messages)
    assert sum(m.startswith("start download") for m in messages) == 1
    progress = [m for m in messages if m.startswith("progress download")]
    assert progress and "%" in progress[-1] and "MB/s" in progress[-1]
    assert any(m.startswith("done download") and "9.0 MiB" in m for m in messages)
    assert [p.name for p in root.rglob("*.part")] == []


def test_small_download_has_no_progress_lines(
    http_server: Any, root: Path, caplog: pytest.LogCaptureFixture, fast_progress: None
) -> None:
    (http_server.root / "s.bin").write_bytes(os.urandom(1024 * 1024))
    caplog.set_level(logging.INFO, logger="tes_filetransfer")
    stage_inputs([{"url": http_server.url("s.bin"), "path": "/s.bin"}], root)
    messages = ft_messages(caplog)
    assert not any(m.startswith("progress") for m in messages)
    assert any(m.startswith("start download") for m in messages)


def test_truncated_body_is_retried(http_server: Any, root: Path) -> None:
    data = os.urandom(300_000)
    (http_server.root / "t.bin").write_bytes(data)
    http_server.plan["/t.bin"] = ["truncate"]
    stage_inputs([{"url": http_server.url("t.bin"), "path": "/t.bin"}], root)
    assert (root / "t.bin").read_bytes() == data
    assert http_server.count("GET", "/t.bin") == 2


def test_404_names_input_url_and_advice(http_server: Any, root: Path) -> None:
    with pytest.raises(TransferError) as info:
        stage_inputs(
            [{"name": "ref", "url": http_server.url("x.txt"), "path": "/data/x.txt"}], root
        )
    message = str(info.value)
    assert message == (
        f"input 'ref' (/data/x.txt): HTTP 404 from {http_server.url('x.txt')}: "
        "check the input URL"
    )
    assert http_server.count("GET", "/x.txt") == 1  # 4xx is not retried
    assert not (root / "data/x.txt").exists()
    assert [p.name for p in root.rglob("*")] == ["data"]


def test_persistent_500_gives_up_after_three_attempts(http_server: Any, root: Path) -> None:
    (http_server.root / "f").write_text("never served")
    http_server.plan["/f"] = [500, 502, 503]
    with pytest.raises(TransferError, match="HTTP 503 from .* after 3 attempts"):
        stage_inputs([{"url": http_server.url("f"), "path": "/f"}], root)
    assert http_server.count("GET", "/f") == 3


def test_connection_refused(root: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransferError) as info:
        stage_inputs([{"url": f"http://127.0.0.1:{port}/x?sig=s3cr3tT0ken", "path": "/x"}], root)
    message = str(info.value)
    assert "connection failed" in message and "after 3 attempts" in message
    assert "s3cr3tT0ken" not in message


def test_secrets_never_reach_messages_or_logs(
    http_server: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 debug lines included
    (http_server.root / "ok.txt").write_text("ok")
    http_server.plan["/ok.txt"] = [500]
    stage_inputs(
        [{"url": http_server.url("ok.txt") + "?sv=1&sig=s3cr3tT0ken", "path": "/ok.txt"}], root
    )
    with pytest.raises(TransferError) as info:
        stage_inputs(
            [{"url": f"http://user:hunter2@127.0.0.1:{http_server.port}/missing.txt"
                     "?sig=s3cr3tT0ken", "path": "/m.txt"}],
            root,
        )
    message = str(info.value)
    assert f"HTTP 404 from http://127.0.0.1:{http_server.port}/missing.txt:" in message
    assert "s3cr3tT0ken" not in message and "sig" not in message and "hunter2" not in message
    assert caplog.records, "expected log records"
    assert "s3cr3tT0ken" not in caplog.text and "hunter2" not in caplog.text
    # the token itself was sent to the server, of course
    assert ("GET", "/ok.txt?sv=1&sig=s3cr3tT0ken") in http_server.requests


def test_put_upload(http_server: Any, root: Path) -> None:
    (root / "out").mkdir()
    (root / "out/r.txt").write_bytes(b"result bytes")
    url = http_server.url("bucket/r.txt")
    logs = upload_outputs([{"path": "/out/r.txt", "url": url}], root)
    assert (http_server.root / "bucket/r.txt").read_bytes() == b"result bytes"
    assert logs == [{"url": url, "path": "/out/r.txt", "size_bytes": "12"}]


def test_put_upload_of_empty_file(http_server: Any, root: Path) -> None:
    (root / "e").write_bytes(b"")
    logs = upload_outputs([{"path": "/e", "url": http_server.url("e")}], root)
    assert (http_server.root / "e").read_bytes() == b"" and logs[0]["size_bytes"] == "0"


def test_put_retry_after_503_and_token_kept_in_joined_urls(
    http_server: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    (root / "out/sub").mkdir(parents=True)
    (root / "out/a.txt").write_text("a")
    (root / "out/sub/b c.txt").write_text("bc")
    http_server.plan["/up/a.txt"] = [503]
    logs = upload_outputs(
        [{"path": "/out", "url": http_server.url("up") + "?sig=s3cr3tT0ken", "type": "DIRECTORY"}],
        root,
    )
    assert (http_server.root / "up/a.txt").read_text() == "a"
    assert (http_server.root / "up/sub/b c.txt").read_text() == "bc"
    assert http_server.count("PUT", "/up/a.txt") == 2
    assert ("PUT", "/up/sub/b%20c.txt?sig=s3cr3tT0ken") in http_server.requests
    assert logs == [
        {"url": http_server.url("up/a.txt"), "path": "/out/a.txt", "size_bytes": "1"},
        {"url": http_server.url("up/sub/b%20c.txt"), "path": "/out/sub/b c.txt",
         "size_bytes": "2"},
    ]
    assert "s3cr3tT0ken" not in caplog.text


def test_put_403_is_not_retried(http_server: Any, root: Path) -> None:
    (root / "o").write_text("o")
    http_server.plan["/o"] = [403]
    with pytest.raises(TransferError) as info:
        upload_outputs([{"name": "log", "path": "/o", "url": http_server.url("o")}], root)
    message = str(info.value)
    assert message.startswith("output 'log' (/o): HTTP 403 from PUT ")
    assert "allow writing" in message
    assert http_server.count("PUT", "/o") == 1


def test_directory_input_over_http_is_refused(http_server: Any, root: Path) -> None:
    with pytest.raises(TransferError, match="need a listable store"):
        stage_inputs(
            [{"url": http_server.url("d/"), "path": "/d", "type": "DIRECTORY"}], root
        )
    assert http_server.requests == []


def test_default_storage_settings(http_server: Any, root: Path) -> None:
    default = HttpStorage()
    assert default.attempts == 3 and default.timeout == (10.0, 60.0)
    register_storage("http", default)  # restored by the autouse fixture
    (http_server.root / "z").write_text("z")
    http_server.plan["/z"] = [500]
    stage_inputs([{"url": http_server.url("z"), "path": "/z"}], root)
    assert (root / "z").read_text() == "z"


def test_big_put_upload_logs_progress(
    http_server: Any, root: Path, caplog: pytest.LogCaptureFixture, fast_progress: None
) -> None:
    data = os.urandom(9 * 1024 * 1024)
    (root / "big.out").write_bytes(data)
    caplog.set_level(logging.INFO, logger="tes_filetransfer")
    logs = upload_outputs([{"path": "/big.out", "url": http_server.url("b/big.out")}], root)
    assert (http_server.root / "b/big.out").read_bytes() == data
    assert logs[0]["size_bytes"] == str(len(data))
    messages = ft_messages(caplog)
    assert any(m.startswith("progress upload") and "%" in m for m in messages)
    assert any(m.startswith("done upload") for m in messages)
