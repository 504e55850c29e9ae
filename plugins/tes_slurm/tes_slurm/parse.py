"""Reading what ``squeue`` and ``sacct`` print, tolerant of the versions in use.

Both commands are asked for ``|``-separated fields (``squeue -o``, ``sacct -P``) in
the order of :data:`SQUEUE_FIELDS` and :data:`SACCT_FIELDS`. The parsers skip what
is not a job line (blank lines, headers, warnings some versions print on stdout),
job steps (``123.batch``, ``123.extern``, ``123.0``: when ``-X`` was not honoured),
accept short state codes (``PD``, ``CA``) as well as long ones, and drop the
``by <uid>`` that ``sacct`` appends to ``CANCELLED``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SQUEUE_FORMAT = "%i|%T|%j|%r"
"""``squeue -o``: job id, long state, job name, reason (last: it may hold anything)."""
SACCT_FIELDS = "JobID,State,ExitCode,JobName,Reason"
"""``sacct -o``: job id, state, exit code, job name, reason (last)."""

SHORT_STATES = {
    "BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "CF": "CONFIGURING",
    "CG": "COMPLETING", "DL": "DEADLINE", "F": "FAILED", "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY", "PD": "PENDING", "PR": "PREEMPTED", "R": "RUNNING",
    "RD": "RESV_DEL_HOLD", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD", "RQ": "REQUEUED",
    "RS": "RESIZING", "RV": "REVOKED", "SI": "SIGNALING", "SE": "SPECIAL_EXIT",
    "SO": "STAGE_OUT", "ST": "STOPPED", "S": "SUSPENDED", "TO": "TIMEOUT",
}
WAITING = frozenset({
    "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
})
"""The job waits in the queue (for resources, priority, a hold)."""
STARTING = frozenset({"CONFIGURING"})
"""Nodes are being prepared for the job."""
ACTIVE = frozenset({
    "RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED", "STOPPED",
})
"""The job holds its nodes (it may be finishing, or paused by an administrator)."""
ENDED = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED",
})
"""The job is over; nothing of it runs any more."""

_JOB_ID = re.compile(r"^\d+(?:_\d+|_\[[^\]]*\])?(?:\+\d+)?$")
"""``123``, an array task ``123_4`` (or its pending range ``123_[1-9]``), a
heterogeneous component ``123+0``."""
_STEP = re.compile(r"^\d+(?:_\d+)?(?:\+\d+)?\.\S+$")


@dataclass(frozen=True)
class JobInfo:
    """One Slurm job as ``squeue`` or ``sacct`` reported it."""

    job_id: str
    state: str
    """Long, upper-case state name (``PENDING``, ``TIMEOUT``, ...); unknown names kept."""
    name: str = ""
    reason: str | None = None
    """Why it pends (or why it ended); ``None`` when Slurm says ``None``."""
    exit_code: int | None = None
    signal: int | None = None


def normalise_state(raw: str) -> str:
    """``CANCELLED by 1000`` -> ``CANCELLED``; ``CA`` -> ``CANCELLED``; ``running`` ->
    ``RUNNING``; a state with a suffix (``COMPLETING+``, ``RUNNING*``) loses it."""
    word = raw.strip().split(" ", 1)[0].rstrip("+*").upper()
    return SHORT_STATES.get(word, word)


def _reason(raw: str) -> str | None:
    text = raw.strip()
    if text.startswith("(") and text.endswith(")"):  # squeue's default %R wraps it
        text = text[1:-1].strip()
    return None if text in ("", "None", "null") else text


def _exit_code(raw: str) -> tuple[int | None, int | None]:
    """``2:0`` -> (2, 0); ``0:15`` -> (0, 15); anything else -> (None, None)."""
    code, _, sig = raw.strip().partition(":")
    try:
        return int(code), (int(sig) if sig else None)
    except ValueError:
        return None, None


def _fields(text: str, count: int) -> list[list[str]]:
    """The ``|``-separated lines of ``text`` with at least ``count`` fields (the last
    field keeps any further ``|``), whose first field is a job id (not a step)."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or "|" not in line:
            continue
        parts = line.split("|", count - 1)
        if len(parts) < count:
            continue
        job_id = parts[0].strip()
        if _STEP.match(job_id) or not _JOB_ID.match(job_id):
            continue  # a header, a step, a warning
        rows.append([part.strip() for part in parts])
    return rows


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Jobs by id from ``squeue -h -o '%i|%T|%j|%r'`` output."""
    jobs = {}
    for job_id, state, name, reason in _fields(text, 4):
        jobs[job_id] = JobInfo(job_id, normalise_state(state), name, _reason(reason))
    return jobs


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """Jobs by id from ``sacct -X -n -P -o JobID,State,ExitCode,JobName,Reason`` output.

    When a job appears more than once (a requeued job, ``--duplicates``), the last
    line wins: ``sacct`` lists a job's records oldest first.
    """
    jobs = {}
    for job_id, state, exit_code, name, reason in _fields(text, 5):
        code, sig = _exit_code(exit_code)
        jobs[job_id] = JobInfo(job_id, normalise_state(state), name, _reason(reason), code, sig)
    return jobs


def parse_sbatch(text: str) -> str:
    """The job id from ``sbatch --parsable`` (``123`` or ``123;cluster``); raises
    ``ValueError`` when the output holds none."""
    for line in reversed(text.strip().splitlines()):
        job_id = line.strip().split(";", 1)[0]
        if _JOB_ID.match(job_id):
            return job_id
    raise ValueError(f"sbatch printed no job id: {text.strip()[-300:]!r}")
