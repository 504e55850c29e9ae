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


HELD = """
import ctypes, sys, threading
from tes_core.shutdown import GracefulStop
stop = threading.Event()
GracefulStop(float(sys.argv[1]), stop.set).install()
print("ready", flush=True)
stop.wait()
ctypes.PyDLL(None).sleep(60)  # a call that keeps the interpreter lock: no other thread runs
"""


def _child(grace: float, script: str = STUCK) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(grace)], stdout=subprocess.PIPE,
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
    """The watchdog ends the process before the grace is over (exit status 1; of a 5 s
    grace, 1 s is kept for exiting: the watchdog comes 0.4 s into it, the backstop 0.8 s)
    and logs where each thread was: what held the stop."""
    proc = _child(grace=5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 1
    err = proc.communicate()[1]
    assert "still stopping 4.4 s after the signal (TES_SHUTDOWN_GRACE=5): exiting now" in err
    held = err[err.index("What held the stop:"):]
    assert "thread MainThread:" in held
    assert 'File "<string>", line 6, in <module>' in held  # the endless wait of STUCK


def test_a_stop_that_holds_the_interpreter_lock_still_ends_within_the_grace() -> None:
    """A call that never lets go of the interpreter lock (a stuck C extension) keeps the
    watchdog thread from running: the backstop, which needs no lock, ends the process
    (status 1) with every thread's stack on stderr. Without it the process would sleep
    60 s; the 10 s bound only tells the two apart."""
    proc = _child(grace=1, script=HELD)
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("a stop holding the interpreter lock outlived its grace")
    assert status == 1
    err = proc.communicate()[1]
    assert "Timeout (" in err and "most recent call first" in err
    assert 'File "<string>", line 8 in <module>' in err  # the call that held it


def test_gunicorn_gives_its_processes_the_same_grace() -> None:
    shown = subprocess.run(
        [sys.executable, "-c", "import tes_core.gunicorn_conf as g; print(g.graceful_timeout)"],
        env={**os.environ, "TES_SHUTDOWN_GRACE": "3"}, capture_output=True, text=True,
        check=True,
    )
    assert shown.stdout.strip() == "3"
