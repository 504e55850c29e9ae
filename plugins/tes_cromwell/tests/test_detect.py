"""Detection across Cromwell versions and output modes, and never another engine's task.

Documents: the shared fixtures (``cromwell-1..3``, ``nextflow-1..2``) and this folder's
``documents/`` (one per Cromwell version and form in SUBMITTERS.md, then near misses
and other engines). See the README's table for what each one stands for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.submitters import SHARED_FIXTURES

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"
NEXTFLOW_DOCUMENTS = HERE.parents[1] / "tes_nextflow" / "tests" / "documents"

W1 = "1f0e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"
W2 = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
SUB = "3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f"

# document -> (workflow id, workflow name, stage, root workflow id)
CLAIMED = {
    "cromwell-1": ("9d2a1f0e-5b7c-4e8a-a3f1-2c6d8e4b7a10", "test", "hello",
                   "9d2a1f0e-5b7c-4e8a-a3f1-2c6d8e4b7a10"),
    "cromwell-2": ("3b1e6f2c-0a9d-4c57-9f3e-7d2b8a6c1e45", "fetch_sra_to_bam", "Fetch_SRA_to_BAM",
                   "3b1e6f2c-0a9d-4c57-9f3e-7d2b8a6c1e45"),
    "cromwell-3": ("a7b8c9d0-e1f2-4a3b-8c4d-5e6f7a8b9c0d", "align", "bwa_mem",
                   "5c0ffee0-1d2e-4f3a-9b8c-7d6e5f4a3b2c"),
    "v36-inline-script-no-uuid": (W1, "hello", "say", W1),
    "v71-local-root-granular": (W1, "tsvflow", "count", W1),
    "v81-coa-account-paths": (W1, "coa", "align", W1),
    "v85-root-output-mode": (W2, "rootmode", "work", W2),
    "v86-ftp-root": (W2, "ftpflow", "fetch", W2),
    "v87-subworkflow-scatter-attempt": (SUB, "align", "bwa", W2),
}


def _not_cromwell() -> list[Path]:
    mine = [p for p in DOCUMENTS.glob("*.json") if not p.name.startswith("v")]
    shared = [p for p in SHARED_FIXTURES.glob("*.json") if not p.name.startswith("cromwell")]
    nextflow = list(NEXTFLOW_DOCUMENTS.glob("*.json"))  # the other plugin's, when present
    return sorted(mine + shared + nextflow)


NOT_CROMWELL = _not_cromwell()


def test_every_document_is_covered() -> None:
    mine = {p.stem for p in DOCUMENTS.glob("v*.json")}
    shared = {p.stem for p in SHARED_FIXTURES.glob("cromwell*.json")}
    assert shared, f"the shared fixtures are missing: {SHARED_FIXTURES}"
    assert mine | shared == set(CLAIMED)
    assert len(NOT_CROMWELL) >= 12


@pytest.mark.parametrize("name", sorted(CLAIMED))
def test_cromwell_tasks_are_claimed_with_their_workflow(
    hook: Any, document: Callable[[str], dict[str, Any]], make_settings: Any, name: str
) -> None:
    submitter = hook.tes_detect_submitter(task=document(name), settings=make_settings())

    workflow_id, workflow_name, stage, root = CLAIMED[name]
    assert submitter is not None
    assert submitter.tags() == {
        "ms-submitter-name": "cromwell",
        "ms-submitter-workflow-id": workflow_id,
        "ms-submitter-workflow-name": workflow_name,
        "ms-submitter-workflow-stage": stage,
        "ms-submitter-root-workflow-id": root,
    }


@pytest.mark.parametrize("path", NOT_CROMWELL, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_other_tasks_and_near_misses_are_not_claimed(
    hook: Any, make_settings: Any, path: Path
) -> None:
    task = json.loads(path.read_text())
    assert hook.tes_detect_submitter(task=task, settings=make_settings()) is None


def test_shard_and_attempt_come_from_the_description(
    document: Callable[[str], dict[str, Any]],
) -> None:
    from tes_cromwell.detect import detect

    call = detect(document("v87-subworkflow-scatter-attempt"))
    assert call is not None
    assert (call.fqn, call.shard, call.attempt) == ("align.bwa", 4, 3)
    assert call.execution_path.endswith(f"/align/{SUB}/call-bwa/shard-4/attempt-3/execution")
    unscattered = detect(document("cromwell-1"))
    assert unscattered is not None and (unscattered.shard, unscattered.attempt) == (-1, 1)


def test_a_root_workflow_id_tag_that_is_not_a_uuid_is_not_trusted(
    document: Callable[[str], dict[str, Any]],
) -> None:
    from tes_cromwell.detect import detect

    task = document("cromwell-3")
    task["tags"] = {"root_workflow_id": None}
    call = detect(task)
    assert call is not None
    assert call.root_workflow_id == "5c0ffee0-1d2e-4f3a-9b8c-7d6e5f4a3b2c", "from the path"
