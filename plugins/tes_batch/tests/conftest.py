"""The fake Batch service, one per test session, and a ``tes-server serve`` on it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakebatch import FakeBatch  # noqa: E402


def remove_containers(task: dict) -> None:
    """A lost node's containers die with it: remove the runner's containers of the task
    (named ``tes-<TES id>-<attempt>-<index>``; the display name is the TES id)."""
    prefix = f"tes-{task.get('displayName', '')}-"
    names = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{prefix}"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def fake_batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBatch]:
    """A fake Batch account on loopback whose nodes run this environment's tes-runner."""
    runner = Path(sys.executable).with_name("tes-runner")
    if not runner.exists():
        pytest.skip("tes-runner is not installed in this environment")
    fake = FakeBatch(tmp_path_factory.mktemp("fake-batch-nodes"),
                     on_node_lost=remove_containers).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def batch(fake_batch: FakeBatch) -> Iterator[FakeBatch]:
    """The fake with no fault switched on and no request recorded yet."""
    fake_batch.reset()
    yield fake_batch
    fake_batch.reset()

