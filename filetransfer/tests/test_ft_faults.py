"""Failures of the network and the disk: retries after dropped connections, a full disk,
and memory that stays bounded while a large blob moves."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tes_filetransfer import TransferError, stage_inputs, upload_outputs
from tes_filetransfer.config import TransferConfig

FAST = TransferConfig(parallel=2, attempts=4, backoff=0.01)


def test_download_survives_dropped_connections(
    blob_container: Any, dropping_proxy: Any, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    blob_container.put("a.bin", data)
    proxy = dropping_proxy(blob_container.account_url, drops=2)
    url = proxy.url_for(blob_container.url("a.bin"))
    stage_inputs([{"url": url, "path": "/a.bin"}], tmp_path, config=FAST)
    assert (tmp_path / "a.bin").read_bytes() == data
    assert proxy.dropped == 2 and proxy.connections > 2


def test_upload_survives_dropped_connections(
    blob_container: Any, dropping_proxy: Any, tmp_path: Path
) -> None:
    (tmp_path / "o.bin").write_bytes(b"z" * 100_000)
    proxy = dropping_proxy(blob_container.account_url, drops=2)
    url = proxy.url_for(blob_container.url("o.bin"))
    upload_outputs([{"path": "/o.bin", "url": url}], tmp_path, config=FAST)
    assert blob_container.get("o.bin") == b"z" * 100_000 and proxy.dropped == 2


def test_connection_that_keeps_dropping_fails_naming_the_url(
    blob_container: Any, dropping_proxy: Any, tmp_path: Path
) -> None:
    blob_container.put("a.bin", os.urandom(300_000))
    proxy = dropping_proxy(blob_container.account_url, drops=1000)
    url = proxy.url_for(blob_container.url("a.bin"))
    config = TransferConfig(attempts=2, backoff=0.01)
    with pytest.raises(TransferError) as info:
        stage_inputs([{"url": url, "path": "/a.bin"}], tmp_path, config=config)
    message = str(info.value)
    assert "after 2 attempts" in message and "/a.bin" in message and "sig=" not in message
    assert not (tmp_path / "a.bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _run_cli(
    args: list[str], limit_file_size: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "tes_filetransfer", *args],
        capture_output=True, text=True, timeout=300, check=False, preexec_fn=limit,
        env={**os.environ, "TES_FT_ATTEMPTS": "2", "TES_FT_BACKOFF": "0.01"},
    )


def test_full_disk_fails_cleanly(blob_container: Any, tmp_path: Path) -> None:
    blob_container.put("big.bin", os.urandom(3 * 1024 * 1024))
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"inputs": [
        {"name": "big", "url": blob_container.url("big.bin"), "path": "/data/big.bin"}
    ]}))
    root = tmp_path / "root"
    result = _run_cli(["download", "--task", str(task), "--root", str(root)],
                      limit_file_size=1024 * 1024)
    assert result.returncode == 1, result.stderr
    assert "input 'big' (/data/big.bin)" in result.stderr
    assert "File too large" in result.stderr and "disk" in result.stderr
    assert "sig=" not in result.stderr
    assert list((root / "data").iterdir()) == []  # no partial file under any name


def test_memory_stays_bounded_while_a_large_blob_moves(
    blob_container: Any, tmp_path: Path
) -> None:
    """A smaller proof than the bench's 2 GB: 192 MiB through a child process whose peak
    resident memory must stay far below the file's size."""
    size = 192 * 1024 * 1024
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        for _ in range(size // (8 * 1024 * 1024)):
            f.write(os.urandom(8 * 1024 * 1024))
    (tmp_path / "root/out").mkdir(parents=True)
    os.link(src, tmp_path / "root/out/big.bin")
    task = tmp_path / "task.json"
    task.write_text(json.dumps({
        "outputs": [{"path": "/out/big.bin", "url": blob_container.url("big.bin")}],
        "inputs": [{"path": "/in/big.bin", "url": blob_container.url("big.bin")}],
    }))
    peaks = []
    for command in ("upload", "download"):
        # VmHWM, the peak RSS of the child's own memory (KiB). Not ru_maxrss: Linux
        # carries the parent's (pytest's) peak over into a child started by vfork/exec.
        code = (
            "import sys\n"
            "from tes_filetransfer.cli import main\n"
            f"rc = main([{command!r}, '--task', {str(task)!r}, '--root', "
            f"{str(tmp_path / 'root')!r}])\n"
            "with open('/proc/self/status') as status:\n"
            "    print(next(line.split()[1] for line in status if line.startswith('VmHWM:')),\n"
            "          file=sys.stderr)\n"
            "sys.exit(rc)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stderr.strip().splitlines()[-1]) * 1024)
    assert (tmp_path / "root/in/big.bin").stat().st_size == size
    assert max(peaks) < 160 * 1024 * 1024, peaks  # well under the 192 MiB that moved
