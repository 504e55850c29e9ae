"""Detection and tags over every form cwl-tes sends, near misses, and every other engine's
tasks."""

from __future__ import annotations

from tests.submitters import Loader, detector_tests, plugin_documents

from tes_cwltes.plugin import tes_detect_submitter

DOCUMENTS = plugin_documents(__file__)

# document -> the ms-submitter-* tags it gets
CLAIMED = {
    "cwl-tes-0.2-1": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "sort"},
    "cwl-tes-0.3-1": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "md5_2"},
    "cwl-tes-0.3-2": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "greet"},
    "cwl-tes-0.3-3": {"ms-submitter-name": "cwl-tes", "ms-submitter-workflow-stage": "shout"},
}

TestDetector = detector_tests(tes_detect_submitter, "cwl-tes", CLAIMED, DOCUMENTS)


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
