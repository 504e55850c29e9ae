"""S3 against moto_server and FTP against a pyftpdlib server started here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tes_filetransfer import TransferError, stage_inputs, upload_outputs
from tes_filetransfer.config import TransferConfig
from tes_filetransfer.stats import TransferStats

FAST = TransferConfig(parallel=4, attempts=2, backoff=0.01)


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch, s3_endpoint_url: str) -> Iterator[str]:
    """A fresh bucket in moto_server; the S3 endpoint set the way users set it."""
    import uuid

    import boto3

    endpoint = s3_endpoint_url
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("TES_FT_S3_ENDPOINT_URL", endpoint)):
        monkeypatch.setenv(name, value)
    bucket = f"b{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    yield bucket


def test_s3_round_trip_with_directory_and_wildcards(s3_bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.txt", "b.txt", "c.log"):
        (out / name).write_text(name)
    logs = upload_outputs(
        [{"path": "/out/*.txt", "path_prefix": "/out/", "url": f"s3://{s3_bucket}/res"}],
        tmp_path, config=FAST,
    )
    assert [e["url"] for e in logs] == [f"s3://{s3_bucket}/res/a.txt",
                                        f"s3://{s3_bucket}/res/b.txt"]
    stats = TransferStats()
    stage_inputs(
        [{"url": f"s3://{s3_bucket}/res", "path": "/in/res", "type": "DIRECTORY"},
         {"url": f"s3://{s3_bucket}/res/a.txt", "path": "/in/a.txt"}],
        tmp_path, config=FAST, stats=stats,
    )
    assert (tmp_path / "in/res/b.txt").read_text() == "b.txt"
    assert (tmp_path / "in/a.txt").read_text() == "a.txt"
    assert stats.files == 3


def test_s3_missing_key_and_cache(s3_bucket: str, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="was not found"):
        stage_inputs([{"url": f"s3://{s3_bucket}/nope", "path": "/x"}], tmp_path, config=FAST)
    (tmp_path / "o").write_bytes(b"k" * 1000)
    upload_outputs([{"path": "/o", "url": f"s3://{s3_bucket}/k"}], tmp_path, config=FAST)
    config = TransferConfig(attempts=1, cache_dir=tmp_path / "cache")
    first, second = TransferStats(), TransferStats()
    stage_inputs([{"url": f"s3://{s3_bucket}/k", "path": "/k1"}], tmp_path / "t1",
                 config=config, stats=first)
    stage_inputs([{"url": f"s3://{s3_bucket}/k", "path": "/k2"}], tmp_path / "t2",
                 config=config, stats=second)
    assert (first.downloaded_bytes, second.downloaded_bytes) == (1000, 0)


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A pyftpdlib server on 127.0.0.1 with user ``tes`` / ``pw`` over ``tmp_path/ftp``."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    home = tmp_path / "ftp"
    home.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("tes", "pw", str(home), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"ftp://tes:pw@127.0.0.1:{server.address[1]}", home
    finally:
        server.close_all()
        thread.join(timeout=5)


def test_ftp_download_directory_and_upload(ftp_server: tuple[str, Path], tmp_path: Path) -> None:
    base, home = ftp_server
    (home / "data/sub").mkdir(parents=True)
    (home / "data/a.txt").write_text("a")
    (home / "data/sub/b.txt").write_text("bb")
    root = tmp_path / "root"
    lines = stage_inputs(
        [{"url": f"{base}/data/a.txt", "path": "/in/a.txt"},
         {"url": f"{base}/data", "path": "/in/data", "type": "DIRECTORY"}],
        root, config=FAST,
    )
    assert (root / "in/a.txt").read_text() == "a"
    assert (root / "in/data/sub/b.txt").read_text() == "bb"
    assert all("pw" not in line for line in lines)
    (root / "out").mkdir()
    (root / "out/r.txt").write_text("result")
    logs = upload_outputs([{"path": "/out/r.txt", "url": f"{base}/results/r.txt"}], root,
                          config=FAST)
    assert (home / "results/r.txt").read_text() == "result"
    assert logs[0]["url"].startswith("ftp://127.0.0.1:") and "pw" not in logs[0]["url"]
    assert not [p for p in (home / "results").iterdir() if p.name.endswith(".part")]


def test_s3_connections_are_checked_after_dns(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint name resolving to a refused address is refused on the connection itself
    (the check a URL gets before the transfer is bypassed here: the storage is called
    directly, as a DNS answer changing after that check would)."""
    import os

    from tes_filetransfer import AccessPolicy
    from tes_filetransfer.policy import using_policy
    from tes_filetransfer.storage import S3Storage

    endpoint = os.environ["TES_FT_S3_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    monkeypatch.setenv("TES_FT_S3_ENDPOINT_URL", endpoint)
    (tmp_path / "f").write_text("x")
    storage = S3Storage()
    with using_policy(AccessPolicy.build([], ["localhost"])):
        assert storage.upload(tmp_path / "f", f"s3://{s3_bucket}/k") == 1
    with using_policy(AccessPolicy.build([], [])), pytest.raises(TransferError, match="refused"):
        storage.download(f"s3://{s3_bucket}/k", tmp_path / "g")
