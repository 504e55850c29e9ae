"""The node-local content cache, against Azurite: one download per blob version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tes_filetransfer import TransferError, stage_inputs
from tes_filetransfer.cache import ContentCache
from tes_filetransfer.config import TransferConfig
from tes_filetransfer.stats import TransferStats


@pytest.fixture
def config(tmp_path: Path) -> TransferConfig:
    return TransferConfig(parallel=4, attempts=2, backoff=0.01, cache_dir=tmp_path / "cache")


def _stage(url: str, root: Path, config: TransferConfig, path: str = "/in/a.bin") -> TransferStats:
    stats = TransferStats()
    stage_inputs([{"url": url, "path": path}], root, config=config, stats=stats)
    return stats


def test_second_task_downloads_zero_bytes(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    data = os.urandom(200_000)
    blob_container.put("a.bin", data)
    first = _stage(blob_container.url("a.bin"), tmp_path / "t1", config)
    # Another task with its own SAS token for the same blob.
    second = _stage(blob_container.url("a.bin", sas=blob_container.sas(permission="r")),
                    tmp_path / "t2", config)
    assert (first.downloaded_bytes, first.cached_bytes) == (200_000, 0)
    assert (second.downloaded_bytes, second.cached_bytes) == (0, 200_000)
    a, b = tmp_path / "t1/in/a.bin", tmp_path / "t2/in/a.bin"
    assert a.read_bytes() == b.read_bytes() == data
    assert a.stat().st_ino != b.stat().st_ino  # copies: a task never holds the entry itself
    assert a.stat().st_nlink == b.stat().st_nlink == 1


def test_changed_blob_is_fetched_again(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    blob_container.put("a.bin", b"one")
    _stage(blob_container.url("a.bin"), tmp_path / "t1", config)
    blob_container.put("a.bin", b"two")  # new ETag
    stats = _stage(blob_container.url("a.bin"), tmp_path / "t2", config)
    assert stats.downloaded_bytes == 3 and (tmp_path / "t2/in/a.bin").read_bytes() == b"two"


def test_cache_hit_still_needs_a_valid_token(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    blob_container.put("a.bin", b"secret data")
    _stage(blob_container.url("a.bin"), tmp_path / "t1", config)
    forged = blob_container.sas(key="AAAA" + blob_container.sas_key_tail())
    with pytest.raises(TransferError, match="HTTP 403"):
        _stage(blob_container.url("a.bin", sas=forged), tmp_path / "t2", config)
    assert not (tmp_path / "t2/in/a.bin").exists()


def test_a_task_writing_its_copy_leaves_the_entry_alone(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    blob_container.put("a.bin", b"original")
    _stage(blob_container.url("a.bin"), tmp_path / "t1", config)
    copy = tmp_path / "t1/in/a.bin"
    os.chmod(copy, 0o644)
    copy.write_bytes(b"changed by a task")
    stats = _stage(blob_container.url("a.bin"), tmp_path / "t2", config)
    assert (stats.downloaded_bytes, stats.cached_bytes) == (0, 8)
    assert (tmp_path / "t2/in/a.bin").read_bytes() == b"original"


def test_entry_changed_in_place_is_refetched(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    """Same size and mtime, other bytes: the stored digest notices and the entry goes."""
    blob_container.put("a.bin", b"original")
    _stage(blob_container.url("a.bin"), tmp_path / "t1", config)
    (entry,) = [p for p in (tmp_path / "cache/objects").iterdir() if p.suffix != ".json"]
    st = entry.stat()
    os.chmod(entry, 0o644)
    entry.write_bytes(b"poisoned")
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))
    stats = _stage(blob_container.url("a.bin"), tmp_path / "t2", config)
    assert (stats.downloaded_bytes, stats.cached_bytes) == (8, 0)
    assert (tmp_path / "t2/in/a.bin").read_bytes() == b"original"
    again = _stage(blob_container.url("a.bin"), tmp_path / "t3", config)
    assert (again.downloaded_bytes, again.cached_bytes) == (0, 8)


def test_directory_inputs_use_the_cache(
    blob_container: Any, tmp_path: Path, config: TransferConfig
) -> None:
    for i in range(5):
        blob_container.put(f"dir/f{i}", b"x" * 100)
    item = {"url": blob_container.url("dir"), "path": "/d", "type": "DIRECTORY"}
    stats1, stats2 = TransferStats(), TransferStats()
    stage_inputs([item], tmp_path / "t1", config=config, stats=stats1)
    stage_inputs([item], tmp_path / "t2", config=config, stats=stats2)
    assert (stats1.downloaded_bytes, stats2.downloaded_bytes, stats2.cached_bytes) == (500, 0, 500)


def test_lru_bound_evicts_least_recently_used(
    blob_container: Any, tmp_path: Path
) -> None:
    config = TransferConfig(attempts=1, cache_dir=tmp_path / "cache", cache_max_bytes=250)
    for name in ("a", "b", "c"):
        blob_container.put(name, name.encode() * 100)
    _stage(blob_container.url("a"), tmp_path / "t1", config)
    _stage(blob_container.url("b"), tmp_path / "t2", config)
    _stage(blob_container.url("a"), tmp_path / "t3", config)  # a is now the most recent
    _stage(blob_container.url("c"), tmp_path / "t4", config)  # evicts b
    cache = ContentCache(tmp_path / "cache", 250)
    assert cache.total_bytes() <= 250
    assert _stage(blob_container.url("a"), tmp_path / "t5", config).downloaded_bytes == 0
    assert _stage(blob_container.url("b"), tmp_path / "t6", config).downloaded_bytes == 100


def test_file_larger_than_the_cache_bypasses_it(
    blob_container: Any, tmp_path: Path
) -> None:
    config = TransferConfig(attempts=1, cache_dir=tmp_path / "cache", cache_max_bytes=10)
    blob_container.put("big", b"y" * 100)
    _stage(blob_container.url("big"), tmp_path / "t1", config)
    assert _stage(blob_container.url("big"), tmp_path / "t2", config).downloaded_bytes == 100
    assert ContentCache(tmp_path / "cache", 10).total_bytes() == 0


@pytest.mark.parametrize("failure", [503, "drop"])
def test_an_http_file_is_cached_though_a_head_failed_once(
    http_server: Any, tmp_path: Path, config: TransferConfig, failure: int | str
) -> None:
    """A HEAD that meets a 5xx or a dropped connection (a pooled connection the server had
    closed) is tried again: the file is still cached, not downloaded by every task."""
    (http_server.root / "w.bin").write_bytes(b"w" * 5000)
    http_server.head_plan = {"/w.bin": [failure]}
    first = _stage(http_server.url("w.bin"), tmp_path / "t1", config)
    second = _stage(http_server.url("w.bin"), tmp_path / "t2", config)
    assert (first.downloaded_bytes, second.downloaded_bytes, second.cached_bytes) == (
        5000, 0, 5000)
    assert http_server.count("HEAD", "/w.bin") == 3
    assert http_server.count("GET", "/w.bin") == 1


def test_an_http_file_whose_head_keeps_failing_is_fetched_uncached(
    http_server: Any, tmp_path: Path, config: TransferConfig, caplog: pytest.LogCaptureFixture
) -> None:
    (http_server.root / "w.bin").write_bytes(b"w" * 5000)
    http_server.head_plan = {"/w.bin": [503] * 10}
    stats = _stage(http_server.url("w.bin"), tmp_path / "t1", config)
    assert (stats.downloaded_bytes, stats.cached_bytes) == (5000, 0)
    assert (tmp_path / "t1/in/a.bin").read_bytes() == b"w" * 5000
    assert "fetched without the node cache" in caplog.text
    assert http_server.count("HEAD", "/w.bin") == config.attempts
