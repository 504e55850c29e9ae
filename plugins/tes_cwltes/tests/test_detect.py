"""Detection and tags over every form cwl-tes sends, near misses, and every other engine's
tasks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.submitters import load_document, other_engines_documents, shared_fixture_names

from tes_cwltes.plugin import tes_detect_submitter

Loader = Callable[[str], dict[str, Any]]
DOCUMENTS = Path(__file__).parent / "documents"

# document -> the ms-submitter-* tags it gets
CLAIMED = {
    "cwl-tes-0.2-1": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "sort"},
    "cwl-tes-0.3-1": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "md5_2"},
}
NEAR = sorted(p.stem for p in DOCUMENTS.glob("near-*.json"))
OTHERS = other_engines_documents("cwl-tes")


def test_every_cwl_tes_fixture_is_covered() -> None:
    mine = {name for name in shared_fixture_names() if name.startswith("cwl-tes-")}
    assert mine == set(CLAIMED)
    assert len(NEAR) >= 5 and len(OTHERS) >= 20


@pytest.mark.parametrize("name", sorted(CLAIMED))
def test_claimed_with_tags(name: str, document: Loader) -> None:
    task = document(name)
    before = copy.deepcopy(task)
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.tags() == CLAIMED[name]
    assert task == before, "detection must not change the task"


@pytest.mark.parametrize("name", NEAR)
def test_near_misses_are_not_claimed(name: str, document: Loader) -> None:
    assert tes_detect_submitter(task=document(name)) is None


@pytest.mark.parametrize("path", OTHERS, ids=lambda p: f"{p.parents[2].name}/{p.stem}")
def test_other_engines_tasks_are_not_claimed(path: Path) -> None:
    assert tes_detect_submitter(task=load_document(path.stem, path.parent)) is None


def test_either_the_tag_or_home_is_enough(document: Loader) -> None:
    """cwl-tes 0.2 sends no HOME, a tool without an id sends no tag (py-tes drops None)."""
    untagged = document("cwl-tes-0.3-1")
    untagged["tags"] = {}
    assert tes_detect_submitter(task=untagged) is not None
    homeless = document("cwl-tes-0.3-1")
    homeless["executors"][0]["env"] = {"TMPDIR": "/tmp"}
    assert tes_detect_submitter(task=homeless) is not None
    homeless["tags"] = {}
    assert tes_detect_submitter(task=homeless) is None


def test_without_stdout_and_stderr_the_workdir_output_comes_first(document: Loader) -> None:
    task = document("cwl-tes-0.3-1")
    task["outputs"] = task["outputs"][1:]
    assert tes_detect_submitter(task=task) is not None


def test_a_nameless_task_has_no_stage(document: Loader) -> None:
    task = document("cwl-tes-0.2-1")
    del task["name"]
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None and submitter.tags() == {"ms-submitter-name": "cwl-tes"}
