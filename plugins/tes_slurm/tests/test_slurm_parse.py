"""Parsing squeue/sacct output of several Slurm versions (fixtures: see fixtures/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tes_slurm")

from tes_slurm.parse import (  # noqa: E402
    normalise_state,
    parse_sacct,
    parse_sbatch,
    parse_squeue,
)

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_squeue_17_11_short_codes_headers_and_warnings() -> None:
    jobs = parse_squeue(read("squeue-17.11.txt"))
    assert sorted(jobs) == ["101", "102", "103", "104", "123_3", "123_[4-9]"]
    assert jobs["101"].state == "PENDING" and jobs["101"].reason == "Priority"
    assert jobs["102"].state == "RUNNING" and jobs["102"].reason is None
    assert jobs["103"].state == "COMPLETING" and jobs["103"].reason is None
    assert jobs["104"].state == "SUSPENDED" and jobs["104"].reason == "JobHeldAdmin"
    assert jobs["101"].name == "tes-aaaa-a1"


def test_squeue_23_02_long_states_odd_reasons() -> None:
    jobs = parse_squeue(read("squeue-23.02.txt"))
    assert jobs["2001"].reason == "QOSMaxJobsPerUserLimit"
    assert jobs["2002"].reason == "ReqNodeNotAvail, UnavailableNodes:node[01-04]"
    assert jobs["2004+1"].state == "RUNNING"
    assert jobs["2005_7"].state == "COMPLETED"
    assert jobs["2006"].state == "CONFIGURING"
    assert jobs["2007"].reason == "Reason|with|pipes"
    assert jobs["2008"].state == "REQUEUE_HOLD"
    assert len(jobs) == 9


def test_squeue_22_05_captured_here() -> None:
    jobs = parse_squeue(read("squeue-22.05.txt"))
    assert jobs["2"].state == "CANCELLED" and jobs["3"].reason == "NonZeroExitCode"


def test_sacct_20_11_steps_cancelled_by_and_requeues() -> None:
    jobs = parse_sacct(read("sacct-20.11.txt"))
    assert sorted(jobs) == ["301", "302", "303", "304"]  # no steps
    assert (jobs["302"].state, jobs["302"].exit_code, jobs["302"].signal) == ("FAILED", 2, 0)
    assert jobs["303"].state == "CANCELLED" and jobs["303"].signal == 15
    assert jobs["304"].state == "RUNNING"  # the last record of a requeued job wins


def test_sacct_23_02_endings_errors_and_unknown_fields() -> None:
    jobs = parse_sacct(read("sacct-23.02.txt"))
    assert [jobs[j].state for j in ("401", "402", "403", "404", "405")] == [
        "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "TIMEOUT", "PENDING"]
    assert jobs["405"].reason == "BeginTime"
    assert jobs["406"].exit_code is None and jobs["406"].reason is None
    assert len(jobs) == 6


def test_sacct_22_05_captured_here() -> None:
    jobs = parse_sacct(read("sacct-22.05.txt"))
    assert jobs["2"].state == "CANCELLED" and jobs["3"].exit_code == 3


@pytest.mark.parametrize("raw, state", [
    ("CANCELLED by 0", "CANCELLED"), ("ca", "CANCELLED"), ("COMPLETING+", "COMPLETING"),
    ("OOM", "OUT_OF_MEMORY"), ("SOMETHING_NEW", "SOMETHING_NEW"),
])
def test_states_normalised(raw: str, state: str) -> None:
    assert normalise_state(raw) == state


@pytest.mark.parametrize("text", ["", "garbage", "|||", "1.batch|COMPLETED|0:0|b|",
                                  "x1|RUNNING|n|None", "\x00|\x01|\x02|\x03"])
def test_hostile_or_empty_output_gives_no_jobs(text: str) -> None:
    assert parse_squeue(text) == {}
    assert parse_sacct(text) == {}


def test_sbatch_output() -> None:
    assert parse_sbatch("Submitted? no\n42\n") == "42"
    assert parse_sbatch("77;cluster\n") == "77"
    with pytest.raises(ValueError, match="no job id"):
        parse_sbatch("sbatch: error: Batch job submission failed\n")
