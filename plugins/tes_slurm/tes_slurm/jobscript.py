"""The batch script of one task attempt: ``#SBATCH`` lines from the task's resources
and backend parameters, then the runner. Readable on purpose: a user can run it by
hand (``sbatch job-1.sh``) to see what the server's job did."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from typing import Any

PARAMETERS: dict[str, str] = {
    "partition": "Slurm partition (queue) of the job (sbatch --partition)",
    "account": "Slurm account charged for the job (sbatch --account)",
    "qos": "Slurm quality of service of the job (sbatch --qos)",
    "time_limit": "wall-clock limit of the job in a Slurm time format: minutes, MM:SS, "
    "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (sbatch --time); a job over it ends "
    "SYSTEM_ERROR",
    "constraint": "node features the job needs, e.g. 'avx512&ib' (sbatch --constraint)",
    "gres": "generic resources per node, e.g. 'gpu:2' or 'gpu:a100:1' (sbatch --gres)",
}
"""The ``resources.backend_parameters`` keys the backend takes, for service-info."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_TIME = re.compile(
    r"\d{1,7}|\d{1,7}:\d{1,2}|\d{1,7}:\d{1,2}:\d{1,2}"
    r"|\d{1,4}-\d{1,2}(?::\d{1,2}(?::\d{1,2})?)?|UNLIMITED|INFINITE"
)
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.\-&|\[\]*:()!,]{1,512}")
_GRES = re.compile(r"[A-Za-z0-9_.\-:,]{1,256}")
_PATTERNS = {
    "partition": (_NAME, "a partition name (letters, digits, '_', '-', '.')"),
    "account": (_NAME, "an account name (letters, digits, '_', '-', '.')"),
    "qos": (_NAME, "a QOS name (letters, digits, '_', '-', '.')"),
    "time_limit": (_TIME, "a Slurm time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
                          "D-HH:MM:SS, e.g. \"90\" or \"1-12:00:00\""),
    "constraint": (_CONSTRAINT, "a feature expression of letters, digits and & | [ ] * : "
                                "( ) ! , (no spaces)"),
    "gres": (_GRES, "a gres list such as \"gpu:2\" or \"gpu:a100:1\""),
}


def check_parameter(field: str, value: Any) -> str:
    """The value of one backend parameter, or ``ValueError`` naming the field."""
    pattern, expected = _PATTERNS[field]
    text = str(value).strip()
    if not pattern.fullmatch(text):
        raise ValueError(f"{field}={str(value)[:80]!r} is not {expected}")
    return text


def validate(parameters: Mapping[str, Any]) -> None:
    """Check every known backend parameter; ``ValueError`` names the first bad one."""
    for key in PARAMETERS:
        if key in parameters and parameters[key] not in (None, ""):
            try:
                check_parameter(key, parameters[key])
            except ValueError as exc:
                raise ValueError(f"backend_parameters.{exc}") from None


def job_name(prefix: str, task_id: str, attempt: int) -> str:
    """The job's name, which carries the task and the attempt: ``tes-<id>-a<n>``."""
    return f"{prefix}{task_id}-a{attempt}"


def sbatch_options(
    document: Mapping[str, Any], defaults: Mapping[str, str], preemptible: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``(option, value)`` pairs from the task's resources and backend parameters.

    ``defaults`` (the operator's partition, account, qos, time_limit) apply when the task
    names none; ``preemptible`` (partition and/or qos) when the task is preemptible and
    names none; the task's own backend parameters win.
    """
    resources = document.get("resources") or {}
    parameters = resources.get("backend_parameters") or {}
    options: list[tuple[str, str]] = []
    if resources.get("cpu_cores"):
        options.append(("cpus-per-task", str(int(resources["cpu_cores"]))))
    if resources.get("ram_gb"):
        options.append(("mem", f"{math.ceil(float(resources['ram_gb']) * 1024)}M"))
    if resources.get("disk_gb"):
        options.append(("tmp", f"{math.ceil(float(resources['disk_gb']) * 1024)}M"))
    chosen = {key: value for key, value in defaults.items() if value}
    if resources.get("preemptible"):
        chosen.update({key: value for key, value in preemptible.items() if value})
    for key in PARAMETERS:
        value = parameters.get(key)
        if value not in (None, ""):
            chosen[key] = check_parameter(key, value)
    flags = {"time_limit": "time"}
    options += [(flags.get(key, key), chosen[key]) for key in PARAMETERS if key in chosen]
    return options


def render(
    *,
    task_id: str,
    attempt: int,
    name: str,
    folder: str,
    options: list[tuple[str, str]],
    runner: str,
    prologue: str,
) -> str:
    """The batch script's text."""
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# TES task {task_id}, attempt {attempt}: written by tes-slurm.",
        "# The runner reads task.json in this folder and keeps status.json up to date.",
        "# To debug by hand, submit it again (sbatch <this file>) or run it (bash <this file>)",
        "# after removing status.json; Slurm's own output is in slurm-<job id>.out.",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --comment=tes-task={task_id},attempt={attempt}",
        f"#SBATCH --chdir={folder}",
        f"#SBATCH --output={folder}/slurm-%j.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        *(f"#SBATCH --{option}={value}" for option, value in options),
        "",
        "set -e",
    ]
    if prologue.strip():
        lines += ["# TES_SLURM_PROLOGUE", prologue.rstrip()]
    lines += [f"exec {runner} run {q(folder)}", ""]
    return "\n".join(lines)
