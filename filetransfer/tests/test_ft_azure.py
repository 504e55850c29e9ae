"""Azure Blob Storage against Azurite, which checks SAS signatures for real."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tes_filetransfer import TransferError, stage_inputs, upload_outputs
from tes_filetransfer.config import TransferConfig
from tes_filetransfer.stats import TransferStats
from tes_filetransfer.storage import AzureBlobStorage, storage_for

FAST = TransferConfig(parallel=4, attempts=2, backoff=0.01)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "task"
    path.mkdir()
    return path


def test_path_style_sas_url_routes_to_azure(blob_container: Any) -> None:
    assert isinstance(storage_for(blob_container.url("a.txt")), AzureBlobStorage)


def test_download_and_upload_with_sas(blob_container: Any, root: Path) -> None:
    blob_container.put("in/a.txt", b"hello blob\n")
    stats = TransferStats()
    lines = stage_inputs(
        [{"url": blob_container.url("in/a.txt"), "path": "/data/a.txt"}], root,
        config=FAST, stats=stats,
    )
    assert (root / "data/a.txt").read_bytes() == b"hello blob\n"
    assert "sig=" not in lines[0] and stats.downloaded_bytes == 11
    (root / "out").mkdir()
    (root / "out/b.txt").write_bytes(b"result")
    logs = upload_outputs(
        [{"path": "/out/b.txt", "url": blob_container.url("out/b.txt")}], root, config=FAST
    )
    assert blob_container.get("out/b.txt") == b"result"
    assert logs == [{"url": blob_container.url("out/b.txt", sas=""), "path": "/out/b.txt",
                     "size_bytes": "6"}]


def test_connection_string_from_environment(
    blob_container: Any, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", blob_container.connection_string)
    blob_container.put("k.txt", b"by key")
    url = f"az://{blob_container.name}/k.txt"
    stage_inputs([{"url": url, "path": "/k.txt"}], root, config=FAST)
    assert (root / "k.txt").read_bytes() == b"by key"


def test_expired_sas_is_refused_and_names_the_url(blob_container: Any, root: Path) -> None:
    blob_container.put("a.txt", b"x")
    expired = blob_container.sas(expiry=datetime.now(UTC) - timedelta(minutes=5))
    url = blob_container.url("a.txt", sas=expired)
    with pytest.raises(TransferError) as info:
        stage_inputs([{"url": url, "path": "/a.txt", "name": "ref"}], root, config=FAST)
    message = str(info.value)
    assert "input 'ref' (/a.txt)" in message and "HTTP 403" in message
    assert "expired" in message and blob_container.url("a.txt", sas="") in message
    assert "sig=" not in message
    assert not (root / "a.txt").exists()


def test_forged_sas_is_refused(blob_container: Any, root: Path) -> None:
    blob_container.put("a.txt", b"x")
    forged = blob_container.sas(key="AAAA" + blob_container.sas_key_tail())
    with pytest.raises(TransferError, match="HTTP 403"):
        stage_inputs([{"url": blob_container.url("a.txt", sas=forged), "path": "/a.txt"}],
                     root, config=FAST)
    (root / "o.txt").write_text("o")
    with pytest.raises(TransferError, match="refused"):
        upload_outputs([{"path": "/o.txt", "url": blob_container.url("o.txt", sas=forged)}],
                       root, config=FAST)
    assert "o.txt" not in blob_container.names()


def test_read_only_sas_cannot_upload(blob_container: Any, root: Path) -> None:
    (root / "o.txt").write_text("o")
    sas = blob_container.sas(permission="rl")
    with pytest.raises(TransferError, match="allow writing"):
        upload_outputs([{"path": "/o.txt", "url": blob_container.url("o.txt", sas=sas)}],
                       root, config=FAST)


def test_missing_blob_is_not_found(blob_container: Any, root: Path) -> None:
    with pytest.raises(TransferError, match="was not found: check the input URL"):
        stage_inputs([{"url": blob_container.url("nope.txt"), "path": "/n.txt"}], root,
                     config=FAST)


def test_directory_input_fetches_the_whole_prefix(blob_container: Any, root: Path) -> None:
    for name in ("ref/a.fa", "ref/idx/a.fai", "ref/idx/deep/b.bin", "refx/other.txt"):
        blob_container.put(name, name.encode())
    lines = stage_inputs(
        [{"url": blob_container.url("ref"), "path": "/data/ref", "type": "DIRECTORY"}],
        root, config=FAST,
    )
    got = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert got == ["data/ref/a.fa", "data/ref/idx/a.fai", "data/ref/idx/deep/b.bin"]
    assert (root / "data/ref/idx/deep/b.bin").read_bytes() == b"ref/idx/deep/b.bin"
    assert "(3 files)" in lines[0]


def test_wildcard_and_directory_outputs(blob_container: Any, root: Path) -> None:
    out = root / "out"
    (out / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.log", "sub/d.txt"):
        (out / name).write_text(name)
    logs = upload_outputs(
        [
            {"path": "/out/*.txt", "path_prefix": "/out/", "url": blob_container.url("res")},
            {"path": "/out/sub", "url": blob_container.url("dir"), "type": "DIRECTORY"},
        ],
        root, config=FAST,
    )
    assert blob_container.names() == ["dir/d.txt", "res/a.txt", "res/b.txt"]
    assert [entry["path"] for entry in logs] == ["/out/a.txt", "/out/b.txt", "/out/sub/d.txt"]
    assert all(entry["size_bytes"] == "5" or entry["size_bytes"] == "9" for entry in logs)
    assert all("?" not in entry["url"] for entry in logs)


def test_large_blob_moves_in_chunks_both_ways(blob_container: Any, root: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (root / "big.bin").write_bytes(data)
    storage = AzureBlobStorage(chunk_concurrency=4)
    # A 3 MiB file moves in one request each way; the chunked path (ranges above 32 MiB,
    # blocks above 64 MiB) is exercised by the 192 MiB transfer of test_ft_faults.py.
    storage.upload(root / "big.bin", blob_container.url("big.bin"))
    storage.download(blob_container.url("big.bin"), root / "back.bin")
    assert (root / "back.bin").read_bytes() == data


def test_sas_never_logged(
    blob_container: Any, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    blob_container.put("a.txt", b"x")
    url = blob_container.url("a.txt")
    stage_inputs([{"url": url, "path": "/a.txt"}], root, config=FAST)
    signature = url.split("sig=", 1)[1].split("&", 1)[0]
    assert signature not in caplog.text


def test_sdk_retries_each_request_with_our_attempts_and_backoff() -> None:
    """The SDK's own retry of a request (a block, a range) waits TES_FT_BACKOFF, doubled
    each time, not its default 15 s then 24 s (that made a dropped connection cost 40 s)."""
    storage = AzureBlobStorage(attempts=3, backoff=0.25)
    url = "https://acct.blob.core.windows.net/c/x.txt?sv=2024-08-04&sr=c&sp=r&sig=abc%3D"
    policy = storage._blob(url)._config.retry_policy
    assert policy.total_retries == 2 and policy.connect_retries == 2
    for count, wait in ((1, 0.25), (2, 0.5), (3, 1.0)):
        assert 0.8 * wait <= policy.get_backoff_time({"count": count}) <= 1.2 * wait
