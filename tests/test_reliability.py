"""Reliability with real processes and injected faults (see ``tests/reliability.py``).

CI runs 120 tasks; ``TES_TEST_RELIABILITY_TASKS=1000`` (or ``python -m bench.bench_reliability``)
runs the full 1,000-task version.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.private_services import PG_BIN
from tests.reliability import run_scenario

TASKS = int(os.environ.get("TES_TEST_RELIABILITY_TASKS", "120"))
SECONDS = max(240.0, TASKS * 1.2)
"""How long the scenario may take; the test's own timeout leaves room to report."""


@pytest.mark.timeout(SECONDS + 180)
def test_no_task_is_lost_duplicated_or_run_twice_through_faults(tmp_path) -> None:
    missing = [b for b in ("redis-server", "docker") if not shutil.which(b)]
    if not (PG_BIN / "pg_ctl").exists():
        missing.append(str(PG_BIN / "pg_ctl"))
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"required in CI: {', '.join(missing)}")
        pytest.skip(f"not installed: {', '.join(missing)}")
    outcome = run_scenario(tmp_path, TASKS, timeout=SECONDS, say=print)
    print(outcome.summary())
    assert len(outcome.faults) == 4, outcome.faults
    assert not outcome.problems(), "\n".join(outcome.problems()) + "\n" + outcome.logs
    assert set(outcome.states.values()) == {"COMPLETE"}, outcome.summary()
