"""Detection and tags over every form Toil's TES batch system sends, near misses, and every
other engine's tasks."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest
from tests.submitters import Loader, detector_tests, plugin_documents

from tes_toil.detect import detect
from tes_toil.plugin import tes_detect_submitter

DOCUMENTS = plugin_documents(__file__)

# document -> the ms-submitter-* tags it gets
CLAIMED = {
    "toil-5.6-1": {
        "ms-submitter-name": "toil",
        "ms-submitter-workflow-id": "file:/home/erin/jobstore",
        "ms-submitter-workflow-stage": "HelloWorld",
    },
    "toil-7.0-1": {
        "ms-submitter-name": "toil",
        "ms-submitter-workflow-id": "aws:us-west-2:cwl-run-42",
        "ms-submitter-workflow-stage": "sort",
    },
    "toil-7.0-2": {
        "ms-submitter-name": "toil",
        "ms-submitter-workflow-id": "file:/tmp/eng-toil/js",
        "ms-submitter-workflow-stage": "greet",
    },
}

TestDetector = detector_tests(tes_detect_submitter, "toil", CLAIMED, DOCUMENTS)


def _with_payload(task: dict[str, Any], job: dict[str, Any], protocol: int) -> dict[str, Any]:
    encoded = base64.b64encode(pickle.dumps(job, protocol)).decode()
    task["executors"][0]["command"][1] = encoded
    return task


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_the_worker_command_is_read_from_any_pickle_protocol(
    protocol: int, document: Loader
) -> None:
    """Protocols 2 and 3 have no memo opcode after the key: no command is read from them,
    but the task is still Toil's; 4 and 5 (Python 3.8+, Toil 5.6+) give the job store."""
    command = "_toil_worker J file:/js kind-J/instance-1 --context abc"
    task = _with_payload(document("toil-7.0-1"), {"command": command}, protocol)
    job = detect(task)
    assert job is not None and job.job == "sort"
    assert job.job_store == ("file:/js" if protocol >= 4 else None)


def test_a_long_worker_command_and_a_virtualenv_entry_point(document: Loader) -> None:
    command = "/home/erin/venv/bin/_toil_worker J file:/js kind-J/instance-1 " + "x" * 300
    job = detect(_with_payload(document("toil-7.0-1"), {"command": command}, 5))
    assert job is not None and job.job_store == "file:/js"


def test_without_a_toil_name_the_stage_is_the_job_name(document: Loader) -> None:
    task = document("toil-5.6-1")
    task["name"] = "something else"
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None and submitter.workflow_stage == "HelloWorld"


@pytest.mark.parametrize(("name", "stage"), [
    ("'HelloWorld' kind-HelloWorld/instance-3f0c8a1b v1", "HelloWorld"),
    ("'FunctionWrappingJob' count_words 1c2d3e4f-0000-4000-8000-000000000000 v3", "count_words"),
    ("'WDLTaskJob' hello.say_hi kind-WDLTaskJob/instance-9x v1", "hello.say_hi"),
])
def test_stage_is_the_unit_name_else_the_job_name(
    name: str, stage: str, document: Loader
) -> None:
    task = document("toil-7.0-1")
    task["name"] = name
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None and submitter.workflow_stage == stage
