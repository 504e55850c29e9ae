"""Interrupting transfers: a store that accepts connections and never answers holds no
caller once the interrupt is set (a worker handing its tasks over must exit in seconds).

Each transfer runs in a thread; the test sets the interrupt once the store has taken a
connection and checks the thread ended with Interrupted. Without the interrupt these
transfers wait a minute per try (the read deadline), so a join bound of a few seconds
is what fails when interruption breaks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tes_filetransfer import Interrupted, TransientError, stage_inputs, upload_outputs
from tes_filetransfer.retry import with_retries
from tes_filetransfer.testing import HangingStore

from .conftest import point_azure_at

ENDS_WITHIN = 8.0
"""Seconds the interrupted transfer may take to return (a read deadline is 60 s)."""


def _interrupted(run: Callable[[threading.Event], object], store: HangingStore | None) -> None:
    """Run ``run(event)`` in a thread, set the event once ``store`` holds a connection
    (or at once), and check that the thread ended with Interrupted."""
    event = threading.Event()
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            run(event)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    waited = time.monotonic() + 20
    while store is not None and not store.accepted and thread.is_alive() \
            and time.monotonic() < waited:
        time.sleep(0.05)
    assert store is None or store.accepted, "the transfer never reached the store"
    time.sleep(0.2)
    event.set()
    thread.join(ENDS_WITHIN)
    assert not thread.is_alive(), "the transfer did not stop when interrupted"
    assert outcome and isinstance(outcome[0], Interrupted), outcome


def test_http_download_from_a_hanging_store_stops_when_interrupted(tmp_path: Path) -> None:
    with HangingStore() as store:
        inputs = [{"url": f"{store.url}/a.txt", "path": "/data/a.txt"},
                  {"url": f"{store.url}/b.txt", "path": "/data/b.txt"}]
        _interrupted(lambda event: stage_inputs(inputs, tmp_path, interrupt=event), store)
    assert not (tmp_path / "data" / "a.txt").exists()


def test_http_upload_to_a_hanging_store_stops_when_interrupted(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "result.txt").write_text("done\n")
    with HangingStore() as store:
        outputs = [{"url": f"{store.url}/result.txt", "path": "/out/result.txt"}]
        _interrupted(lambda event: upload_outputs(outputs, tmp_path, interrupt=event), store)


def test_azure_folder_listing_on_a_hanging_store_stops_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case of the issue: a DIRECTORY input from a blob store that went away."""
    with HangingStore() as store:
        point_azure_at(monkeypatch, store.url)
        inputs = [{"url": "az://inputs/folder", "path": "/data/folder", "type": "DIRECTORY"}]
        _interrupted(lambda event: stage_inputs(inputs, tmp_path, interrupt=event), store)


def test_s3_download_from_a_hanging_store_stops_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HangingStore() as store:
        monkeypatch.setenv("TES_FT_S3_ENDPOINT_URL", store.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        inputs = [{"url": "s3://bucket/key.txt", "path": "/data/key.txt"}]
        _interrupted(lambda event: stage_inputs(inputs, tmp_path, interrupt=event), store)


def test_the_wait_before_a_retry_ends_when_interrupted() -> None:
    def flaky() -> None:
        raise TransientError("HTTP 503 from the store")

    def run(event: threading.Event) -> None:
        from tes_filetransfer import interruptible

        with interruptible(event):
            with_retries(flaky, label="store", attempts=5, backoff=60.0)

    _interrupted(run, None)


def test_azure_blob_download_from_a_hanging_store_stops_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One blob (the SDK's client, not adlfs' listing)."""
    with HangingStore() as store:
        point_azure_at(monkeypatch, store.url)
        inputs = [{"url": "az://inputs/blob.txt", "path": "/data/blob.txt"}]
        _interrupted(lambda event: stage_inputs(inputs, tmp_path, interrupt=event), store)


def test_gcs_download_from_a_hanging_store_stops_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gcsfs")
    with HangingStore() as store:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", store.url)
        monkeypatch.setenv("TES_FT_GCS_TOKEN", "anon")
        inputs = [{"url": "gs://bucket/key.txt", "path": "/data/key.txt"}]
        _interrupted(lambda event: stage_inputs(inputs, tmp_path, interrupt=event), store)
