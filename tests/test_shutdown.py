"""SIGTERM and SIGINT handling of serving processes (``tes_core.shutdown``), in child
processes whose hand-over never ends: a second signal, or the grace period, ends them.
The hand-over itself is tested with real tasks in ``tests/local/test_local_handover.py``
and ``tests/test_rolling_restart.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

STUCK = """
import threading, sys
from tes_core.shutdown import GracefulStop
GracefulStop(float(sys.argv[1]), lambda: None).install()
print("ready", flush=True)
threading.Event().wait()  # a hand-over that never ends
"""


def _child(grace: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", STUCK, str(grace)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


LONG_GRACE = 120.0
"""A grace no test waits for: a process gone before it was stopped by something else."""


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_stops_at_once(second: signal.Signals) -> None:
    """With a hand-over that never ends and a 120 s grace, a second signal ends the
    process before the grace would: what ends it is the second signal (its exit status
    128 + signal, not the watchdog's 1), well within half the grace. Not a timing claim:
    the bound only tells "before the grace" from "at the grace"."""
    proc = _child(grace=LONG_GRACE)
    proc.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.5)  # handing over
    proc.send_signal(second)
    try:
        status = proc.wait(LONG_GRACE / 2)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {LONG_GRACE / 2:g} s after a second signal")
    assert status == 128 + second
    assert "again: stopping at once" in proc.communicate()[1]


def test_the_grace_period_ends_a_stop_that_hangs() -> None:
    proc = _child(grace=1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 1
    assert "still stopping 1 s after the signal (TES_SHUTDOWN_GRACE): exiting now" in (
        proc.communicate()[1]
    )


def test_gunicorn_gives_its_processes_the_same_grace() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import tes_core.gunicorn_conf as g; print(g.graceful_timeout)"],
        env={**os.environ, "TES_SHUTDOWN_GRACE": "3"}, capture_output=True, text=True,
        check=True,
    )
    assert shown.stdout.strip() == "3"
