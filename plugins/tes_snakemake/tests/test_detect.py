"""Detection and tags over every form Snakemake's TES executor sends, near misses, and
every other engine's tasks."""

from __future__ import annotations

import pytest
from tests.submitters import Loader, detector_tests, plugin_documents

from tes_snakemake.detect import detect
from tes_snakemake.plugin import tes_detect_submitter

DOCUMENTS = plugin_documents(__file__)

# document -> the ms-submitter-* tags it gets
CLAIMED = {
    "snakemake-7-1": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "file:///home/carol/snakemake-tutorial",
        "ms-submitter-workflow-stage": "bwa_map",
    },
    "snakemake-7-2": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "file:///home/carol/snakemake-tutorial",
        "ms-submitter-workflow-stage": "qc",
    },
    "snakemake-8-1": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "file:///data/projects/variant-calling",
        "ms-submitter-workflow-stage": "plot_quals",
    },
    "snakemake-8-2": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "file:///data/projects/variant-calling",
        "ms-submitter-workflow-stage": "bwa_map",
    },
    "snakemake-9-1": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "s3://eng-smk-bucket/run3",
        "ms-submitter-workflow-stage": "greet",
    },
    "snakemake-9-2": {
        "ms-submitter-name": "snakemake",
        "ms-submitter-workflow-id": "s3://eng-smk-bucket/run3",
        "ms-submitter-workflow-stage": "shout",
    },
}

TestDetector = detector_tests(tes_detect_submitter, "snakemake", CLAIMED, DOCUMENTS)


def test_group_job_and_job_ids(document: Loader) -> None:
    group = detect(document("snakemake-7-2"))
    assert group is not None and group.group and group.jobid.startswith("0f4a6c2e")
    single = detect(document("snakemake-8-1"))
    assert single is not None and not single.group and single.jobid == "7"


@pytest.mark.parametrize(("line", "claimed"), [
    ("python -m snakemake --snakefile 'Snakefile' --target-jobs 'a:'", True),
    ("cd /tmp && /usr/bin/python3.12 -m snakemake --snakefile 'Snakefile'", True),
    ("python \\\n-m snakemake mapped/A.bam --snakefile Snakefile \\\n--force", True),
    ("echo python -m snakemakeX --snakefile S", False),
    ("mypython -m snakemake --snakefile S", False),
    ("python -m snakemake --cores 1", False),
    ("snakemake --snakefile Snakefile", False),
])
def test_the_script_must_run_snakemake(line: str, claimed: bool, document: Loader) -> None:
    task = document("snakemake-8-1")
    task["inputs"][-1]["content"] = f"#!/bin/sh\n{line}\n"
    assert (detect(task) is not None) is claimed


def test_without_properties_the_stage_comes_from_the_job_name(document: Loader) -> None:
    task = document("snakemake-7-1")
    script = task["inputs"][-1]["content"]
    task["inputs"][-1]["content"] = script.replace("# properties = ", "# props: ")
    job = detect(task)
    assert job is not None and (job.rule, job.jobid) == ("bwa_map", "3")
    task["name"] = "custom-3"
    job = detect(task)
    assert job is not None and job.rule is None


def test_no_local_files_no_workflow_id(document: Loader) -> None:
    task = document("snakemake-8-1")
    task["inputs"] = [i for i in task["inputs"] if "url" not in i]
    task["outputs"] = []
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.tags() == {"ms-submitter-name": "snakemake",
                                "ms-submitter-workflow-stage": "plot_quals"}


@pytest.mark.parametrize(("prefix", "workflow_id"), [
    ("'s3://bucket/runs/a'", "s3://bucket/runs/a"),
    ("gs://bucket/b", "gs://bucket/b"),
    ("''", None),
])
def test_without_local_files_the_storage_prefix_is_the_workflow_id(
    prefix: str, workflow_id: str | None, document: Loader
) -> None:
    task = document("snakemake-9-1")
    script = task["inputs"][-1]["content"]
    assert script.count("--default-storage-prefix 's3://eng-smk-bucket/run3'") == 2
    task["inputs"][-1]["content"] = script.replace(
        "--default-storage-prefix 's3://eng-smk-bucket/run3'", f"--default-storage-prefix {prefix}"
    )
    job = detect(task)
    assert job is not None and job.workdir == workflow_id


def test_a_local_file_wins_over_the_storage_prefix(document: Loader) -> None:
    task = document("snakemake-9-1")
    task["outputs"] = [{"url": "file:///home/dan/wf/out/hello.txt", "path": "/tmp/out/hello.txt"}]
    job = detect(task)
    assert job is not None and job.workdir == "file:///home/dan/wf"


def test_overlong_values_are_not_tags(document: Loader) -> None:
    """The core refuses tags over 2000 bytes: the plugin must not make a task fail so."""
    task = document("snakemake-7-1")
    deep = "/d" * 600
    for item in task["inputs"] + task["outputs"]:
        if "url" in item:
            item["url"] = item["url"].replace("/home/carol", deep)
    script = task["inputs"][-1]["content"]
    long_rule = '"rule": "' + "r" * 3000 + '"'
    task["inputs"][-1]["content"] = script.replace('"rule": "bwa_map"', long_rule)
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    assert submitter.tags() == {"ms-submitter-name": "snakemake"}
