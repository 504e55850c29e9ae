"""Every store's requests have deadlines and a bounded count of tries, stacked retries
included: a store that accepts connections and never answers (``HangingStore``) makes a
transfer fail on its own, after a counted number of connections, not hang.

The deadlines are shortened here (the module constants the clients are built from), so
that a transfer whose deadlines are not applied (a library default: 300 s for azure-core's
transport, 5 minutes for gcsfs' aiohttp session) is what the join bound catches; the
count of connections the store took shows how the library's tries stack with ours.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tes_filetransfer import TransferConfig, TransferError, stage_inputs
from tes_filetransfer.storage import deadlines
from tes_filetransfer.testing import HangingStore

from .conftest import point_azure_at

DEADLINE = 0.5
"""Seconds, to connect and of silence, for the clients built in these tests."""
ENDS_WITHIN = 90.0
"""Seconds the failing transfer may take: far above its deadlines and tries (a few
seconds), far below one library default (300 s)."""
ATTEMPTS = 2
"""Our own tries of the whole file (``TES_FT_ATTEMPTS``)."""


def _fails_on_its_own(store: HangingStore, url: str, tmp_path: Path) -> int:
    """Stage ``url`` without any interrupt; check it failed within the bound, and return
    how many connections the store took."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            stage_inputs([{"url": url, "path": "/data/x"}], tmp_path,
                         config=TransferConfig(attempts=ATTEMPTS, backoff=0.01))
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(ENDS_WITHIN)
    assert not thread.is_alive(), f"still waiting on {url} {ENDS_WITHIN:g} s later"
    assert outcome and isinstance(outcome[0], TransferError), outcome
    assert store.accepted, "the transfer never reached the store"
    return store.accepted


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built from now on get :data:`DEADLINE`, and the store's loopback address
    is allowed."""
    from tes_filetransfer.storage import azure, gcs

    for module in (deadlines, azure, gcs):
        monkeypatch.setattr(module, "CONNECT_TIMEOUT", DEADLINE)
        monkeypatch.setattr(module, "READ_TIMEOUT", DEADLINE)
    monkeypatch.setenv("TES_FT_ALLOWED_HOSTS", "127.0.0.1")


def test_an_azure_blob_download_ends_by_its_deadlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_deadlines: None
) -> None:
    """The single-blob path (the SDK's own client on our guarded transport): the SDK tries
    each request 4 times (this suite's AzureBlobStorage), and no more on top."""
    with HangingStore() as store:
        point_azure_at(monkeypatch, store.url)
        tries = _fails_on_its_own(store, "az://inputs/blob.txt", tmp_path)
    assert tries <= ATTEMPTS * 4, tries


def test_a_gcs_download_ends_by_its_deadlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short_deadlines: None
) -> None:
    """gcsfs alone would try every request 6 times, inside a download retried 6 times,
    each waiting up to 5 minutes: here a download is the object's metadata and its
    folder's listing, each tried LIBRARY_ATTEMPTS times, for each of our attempts."""
    pytest.importorskip("gcsfs")
    with HangingStore() as store:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", store.url)
        monkeypatch.setenv("TES_FT_GCS_TOKEN", "anon")
        tries = _fails_on_its_own(store, "gs://inputs/blob.txt", tmp_path)
    assert tries <= ATTEMPTS * 2 * deadlines.LIBRARY_ATTEMPTS, tries
