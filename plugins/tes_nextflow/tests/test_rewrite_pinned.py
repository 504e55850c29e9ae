"""The rewritten URLs of every Azure Nextflow document, pinned byte for byte.

Rewriting is tuned for speed (folders found once per task, container SAS tokens reused
within their second, URLs parsed once); these cases hold that it writes exactly what
it wrote before, with the clock stopped so each SAS is the same on every run. The
expected file was written by the straightforward code before that tuning.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from tes_core.config import Settings

from tes_nextflow.plugin import tes_detect_submitter, tes_url_rewriter

from .test_rewrite import Loader, storage_for

PINNED = Path(__file__).parent / "pinned" / "rewritten.json"
FROZEN_NOW = 1_800_000_000.25
"""The clock while signing: a fixed instant, so the SAS windows never move."""
AZURE_DOCUMENTS = ("nextflow-2", "plugin-1.4.1-azure-paths", "builtin-24.02-azure")


def rewrite_in_place(task: dict[str, Any]) -> dict[str, Any]:
    """Every URL of ``task`` through the task's rewriter and written back into it, one
    after the other, as the task service does (so a later URL sees the earlier ones
    rewritten)."""
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    rewrite = tes_url_rewriter(task=task, submitter=submitter, settings=Settings(),
                               storage=storage_for())
    assert rewrite is not None
    for key, direction in (("inputs", "input"), ("outputs", "output")):
        for item in task.get(key) or ():
            new_url = rewrite(item["url"], direction)
            if new_url is not None:
                item["url"] = new_url
    return task


def with_repeated_url(task: dict[str, Any], folder_first: bool) -> dict[str, Any]:
    """``task`` with its DIRECTORY input's URL given again as a FILE input, after the
    folder or before it: whether each is signed as a folder depends on the order."""
    folder = next(item for item in task["inputs"] if item.get("type") == "DIRECTORY")
    again = {**copy.deepcopy(folder), "type": "FILE", "path": folder["path"] + ".file"}
    task["inputs"].append(again)
    if not folder_first:
        task["inputs"].remove(folder)
        task["inputs"].append(folder)
    return task


def with_more_inputs(task: dict[str, Any], count: int) -> dict[str, Any]:
    """``task`` with ``count`` more FILE inputs first: more than the rewriter scans item
    by item for each URL (it picks the folders out once for such a task)."""
    first = task["inputs"][0]
    task["inputs"][:0] = [{**first, "url": f"{first['url']}.{index}",
                           "path": f"{first['path']}.{index}"} for index in range(count)]
    return task


def cases(document: Loader) -> dict[str, dict[str, Any]]:
    """Each pinned case's task, rewritten."""
    found = {name: rewrite_in_place(document(name)) for name in AZURE_DOCUMENTS}
    for folder_first in (True, False):
        name = f"nextflow-2-repeated-url-{'folder-first' if folder_first else 'file-first'}"
        found[name] = rewrite_in_place(with_repeated_url(document("nextflow-2"), folder_first))
        found[f"{name}-many-inputs"] = rewrite_in_place(
            with_more_inputs(with_repeated_url(document("nextflow-2"), folder_first), 40))
    return found


def test_rewritten_urls_are_unchanged(document: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tes_azure.blobstorage.time.time", lambda: FROZEN_NOW)
    found = {name: {key: [item["url"] for item in task.get(key) or ()]
                    for key in ("inputs", "outputs")}
             for name, task in cases(document).items()}
    expected = json.loads(PINNED.read_text())
    assert found == expected
    # Every case signed something: a pin of unchanged URLs would prove nothing.
    for name, urls in found.items():
        assert any("sig=" in url for url in urls["inputs"] + urls["outputs"]), name


@pytest.mark.parametrize("name", AZURE_DOCUMENTS)
def test_a_task_stored_signed_by_an_older_version_is_left_as_it_is(
    document: Loader, name: str
) -> None:
    """Before URLs were signed late, tasks were stored with their SAS URLs; when a backend
    gets such a task, signing it again leaves them as they are."""
    signed = rewrite_in_place(document(name))
    assert "sig=" in json.dumps(signed)
    assert rewrite_in_place(copy.deepcopy(signed)) == signed
