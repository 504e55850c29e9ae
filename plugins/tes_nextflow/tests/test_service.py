"""Through the task service, with the plugin loaded from its entry point as a server does."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tes_azure import blobstorage
from tes_core.config import Settings
from tes_core.core import Core, build_core
from tes_core.errors import SubmitterError
from tes_core.store import load_record

Loader = Callable[[str], dict[str, Any]]
KEY = base64.b64encode(b"not a real key, but signs like one").decode()
STORAGE = (f"DefaultEndpointsProtocol=https;AccountName=nfteststorage;AccountKey={KEY};"
           "EndpointSuffix=core.windows.net")


# Other installed submitter plugins (Cromwell's) would rewrite the other engines' URLs;
# tes-azure stays: it builds the server's blob storage.
OTHERS = ",".join(sorted({ep.name for ep in entry_points(group="tes")} - {"nextflow", "azure"}))


def make_core(data_dir: Path, **env: str) -> Core:
    """A core with no worker threads (created tasks stay QUEUED, nothing runs) and no
    plugin but this one and tes-azure."""
    settings = Settings.from_env({
        "TES_DATA_DIR": str(data_dir), "TES_WORKER_THREADS": "0", "TES_DISABLED_PLUGINS": OTHERS,
        **env,
    })
    core = build_core(settings)
    core.db.create_all()
    return core


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    made = make_core(tmp_path, TES_STORAGE_CONNECTION_STRING=STORAGE)
    yield made
    made.close()


def stored(core: Core, document: dict[str, Any]) -> dict[str, Any]:
    return core.service.get(core.service.create(document), "BASIC")


def test_the_plugin_is_loaded_from_its_entry_point(core: Core) -> None:
    names = {info.name: info for info in core.hooks.plugins()}
    assert "nextflow" in names, sorted(names)
    assert set(names["nextflow"].hooks) == {"tes_detect_submitter", "tes_url_rewriter"}
    assert names["nextflow"].error is None


def test_tags_are_stored_next_to_the_clients_tags(core: Core, document: Loader) -> None:
    task = stored(core, document("nextflow-2"))
    assert task["tags"] == {
        "project": "rnaseq-demo",
        "owner": "alice",
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "az://nfteststorage/work/nf-runs",
        "ms-submitter-workflow-stage": "QUANT:SALMON_QUANT",
    }
    sent = document("nextflow-2")
    assert [item["url"] for item in task["inputs"]] == [item["url"] for item in sent["inputs"]]
    assert "sig=" not in json.dumps(task), "no SAS token is stored or shown"


def test_a_backend_gets_sas_urls_signed_when_it_gets_the_task(
    tmp_path: Path, document: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed for the attempt, not at create: a task that waited longer than the SAS
    lifetime (1 hour here) still gets tokens that are valid."""
    core = make_core(tmp_path, TES_STORAGE_CONNECTION_STRING=STORAGE,
                     TES_NEXTFLOW_SAS_LIFETIME_HOURS="1")
    try:
        task_id = core.service.create(document("nextflow-2"))
        with core.db.read() as conn:
            record = load_record(conn, task_id)
        assert record is not None
        two_hours_later = time.time() + 7200
        monkeypatch.setattr(blobstorage, "time", SimpleNamespace(time=lambda: two_hours_later))
        ready = core.backend.dispatched(record)
    finally:
        core.close()
    items = ready.document["inputs"] + ready.document["outputs"]
    assert all(item["url"].startswith("https://nfteststorage.blob.core.windows.net/")
               for item in items)
    for item in items:
        expiry = parse_qs(urlsplit(item["url"]).query)["se"][0]
        expires = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert expires.timestamp() >= two_hours_later + 3600 - 1, item["url"]


@pytest.mark.parametrize("name", ["cromwell-1", "other-snakemake", "near-no-exitcode"])
def test_others_are_stored_unchanged(core: Core, document: Loader, name: str) -> None:
    task = stored(core, document(name))
    assert task.get("name") == document(name).get("name")
    assert not any(key.startswith("ms-submitter-") and task["tags"][key] == "nextflow"
                   for key in task.get("tags") or {})
    sent = [item.get("url") for item in document(name).get("inputs") or ()]
    assert [item.get("url") for item in task.get("inputs") or ()][: len(sent)] == sent


def test_no_storage_is_a_400_naming_the_field(tmp_path: Path, document: Loader) -> None:
    core = make_core(tmp_path)
    try:
        with pytest.raises(SubmitterError) as caught:
            core.service.create(document("nextflow-2"))
        assert caught.value.status_code == 400
        assert caught.value.message.startswith("inputs[0].url: az://nfteststorage/work/")
        assert "set TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL" in (
            caught.value.message
        )
        assert list(caught.value.errors or {}) == ["inputs.0.url"]
        # Local paths need no storage: that task is taken and tagged.
        task = stored(core, document("nextflow-1"))
        assert task["tags"]["ms-submitter-name"] == "nextflow"
        assert task["inputs"][0]["url"] == document("nextflow-1")["inputs"][0]["url"]
    finally:
        core.close()


def test_disabled_plugin_claims_nothing(tmp_path: Path, document: Loader) -> None:
    core = make_core(tmp_path, TES_DISABLED_PLUGINS=f"{OTHERS},nextflow")
    try:
        task = stored(core, document("nextflow-1"))
        assert "ms-submitter-name" not in (task.get("tags") or {})
    finally:
        core.close()
