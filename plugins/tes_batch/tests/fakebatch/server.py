"""A ``tes-server serve`` on the fake Batch account, for the end-to-end tests' fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .service import FakeBatch


def serve_on(fake: FakeBatch, data: Path, batch: dict[str, str], **core: str) -> Iterator[Any]:
    """A ``tes-server serve`` (``tests.servers.ServerProcess``) on ``fake`` with its data in
    ``data``, the ``TES_BATCH_*`` settings ``batch`` and the core's settings ``core``
    (reconcile passes every second unless given); for a fixture to ``yield from``. The
    fake's pools and jobs are wiped afterwards."""
    from tests import servers

    env = servers.server_env(data, **{"TES_RECONCILE_INTERVAL": "1", **core},
                             **fake.settings(**batch))
    proc = servers.ServerProcess(data, env).start()
    try:
        yield proc
    finally:
        proc.stop()
        fake.wipe()
