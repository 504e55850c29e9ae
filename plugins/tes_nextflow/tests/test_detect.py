"""Detection and tags over every form Nextflow sends, and tasks that are not Nextflow's."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from tests.submitters import fixture_engine, shared_fixture_names

from tes_nextflow.detect import BUILTIN, PLUGIN, inspect_task, launch_form
from tes_nextflow.plugin import tes_detect_submitter

Loader = Callable[[str], dict[str, Any]]


# document -> (form, ms-submitter-* tags it gets)
CLAIMED = {
    "nextflow-1": (PLUGIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "/home/alice/rnaseq/work",
        "ms-submitter-workflow-stage": "NFCORE_RNASEQ:RNASEQ:FASTQC",
    }),
    "nextflow-2": (PLUGIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "az://nfteststorage/work/nf-runs",
        "ms-submitter-workflow-stage": "QUANT:SALMON_QUANT",
    }),
    "plugin-1.4.1-azure-paths": (PLUGIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "/nfteststorage/work/nf-runs",
        "ms-submitter-workflow-stage": "ALIGN:BWA_MEM",
    }),
    "plugin-s3": (PLUGIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "5b0c7e38-9f3a-4e1d-8c2b-6a7d9e0f1a2b",
        "ms-submitter-workflow-name": "happy_turing",
        "ms-submitter-workflow-stage": "CALL_VARIANTS",
    }),
    "builtin-24.02-azure": (BUILTIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "az://nf-work/runs",
        "ms-submitter-workflow-stage": "COUNT",
    }),
    "builtin-22-file-urls": (BUILTIN, {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": "file:///scratch/bob/work",
    }),
}

NOT_CLAIMED = [
    # every other engine's shared fixture (cromwell-1, snakemake-8-1, toil-5.6-1, ...)
    *(name for name in shared_fixture_names() if fixture_engine(name) != "nextflow"),
    "other-snakemake", "other-cwl-tes", "other-toil",
    "near-no-command-run", "near-no-exitcode", "near-other-command", "near-two-executors",
    "near-other-workdir", "near-inline-command-run",
]


def test_every_shared_fixture_is_covered(shared_fixture_names: list[str]) -> None:
    names = shared_fixture_names
    assert "nextflow-1" in names and "cromwell-1" in names, names
    assert set(names) <= set(CLAIMED) | set(NOT_CLAIMED), set(names) - set(CLAIMED)


@pytest.mark.parametrize("name", sorted(CLAIMED))
def test_claimed_with_tags(name: str, document: Loader) -> None:
    task = document(name)
    before = copy.deepcopy(task)
    form, tags = CLAIMED[name]
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.tags() == tags
    assert launch_form(task["executors"]) == form
    assert task == before, "detection must not change the task"


@pytest.mark.parametrize("name", NOT_CLAIMED)
def test_not_claimed(name: str, document: Loader) -> None:
    assert tes_detect_submitter(task=document(name)) is None


def test_builtin_launcher_variants() -> None:
    for line in ("/bin/bash -ue .command.run &> .command.log",
                 "/bin/bash -uex .command.run &> .command.log",
                 "bash -ue /work/.command.run &> /work/.command.log"):
        assert launch_form([{"image": "x", "command": ["/bin/bash", "-c", line],
                             "workdir": "/work"}]) == BUILTIN, line
    for line in ("/bin/bash -ue .command.run",  # no log: not Nextflow's launcher
                 "/bin/bash -ue .command.sh &> .command.log",
                 "/bin/bash -ue .command.run &> .command.log; curl evil"):
        assert launch_form([{"image": "x", "command": ["/bin/bash", "-c", line],
                             "workdir": "/work"}]) is None, line


def test_work_folder_not_in_hash_layout_has_no_workflow_id(document: Loader) -> None:
    task = document("nextflow-1")
    for item in task["inputs"] + task["outputs"]:
        item["url"] = item["url"].replace("/5e/0a3c1b7d9e2f4a6c8b0d1e3f5a7c9b", "/task-1")
    found = inspect_task(task)
    assert found is not None and found.work_root is None
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert "ms-submitter-workflow-id" not in submitter.tags()


def test_session_tag_must_be_a_uuid(document: Loader) -> None:
    task = document("plugin-s3")
    task["tags"]["sessionId"] = "not-a-uuid"
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.workflow_id == "s3://my-bucket/scratch/work"


@pytest.mark.parametrize(("name", "stage"), [
    ("FASTQC", "FASTQC"),
    ("FASTQC (1)", "FASTQC"),
    ("NF:SUB:STEP (a b (c))", "NF:SUB:STEP"),
])
def test_stage_is_the_process_name(name: str, stage: str, document: Loader) -> None:
    task = document("nextflow-1")
    task["name"] = name
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None and submitter.workflow_stage == stage


def test_overlong_values_are_not_tags(document: Loader) -> None:
    """The core refuses tags over 2000 bytes: the plugin must not make a task fail so."""
    task = document("nextflow-1")
    deep = "/d" * 600
    for item in task["inputs"] + task["outputs"]:
        item["url"] = item["url"].replace("/home/alice", deep)
    task["name"] = "P" * 3000 + " (x)"
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.tags() == {"ms-submitter-name": "nextflow"}
