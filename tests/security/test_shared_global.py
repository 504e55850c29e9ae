"""Class 7: with authentication on, ``/tes-wd/shared-global`` is one folder per owner.

Without the fix every task of every tenant shared one writable folder: one user's task
read (or replaced) what another's left there. Now the owner's tenant and subject choose
the host folder (``<data>/shared-global-owners/<hash>``); another owner's is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.local.support import (
    RUNTIME_NAMES,
    TERMINAL,
    Tes,
    require_runtime,
    sh,
    start_server,
    stdouts,
)
from tests.local.support import token as unique
from tests.oidc import IdentityProvider
from tests.security.support import HostCanary, assert_no_leak, server_canary_env

pytestmark = pytest.mark.timeout(120)

OTHER_TENANT = "99999999-0000-0000-0000-000000000000"


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    idp: IdentityProvider,
) -> Iterator[Tes]:
    """A real server requiring bearer tokens, on one runtime."""
    require_runtime(request.param)
    data_dir = tmp_path_factory.mktemp(f"tes-owners-{request.param}")
    server = start_server(data_dir, request.param, **server_canary_env(), **idp.settings())
    yield Tes(server, request.param)
    server.stop()


def _run_as(tes: Tes, token: str, task: dict[str, Any]) -> dict[str, Any]:
    """Submit ``task`` with ``token`` and wait for it to finish; the task in FULL view."""
    headers = {"Authorization": f"Bearer {token}"}
    response = requests.post(f"{tes.url}/tasks", json=task, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    for _ in range(1200):
        found = requests.get(f"{tes.url}/tasks/{task_id}", params={"view": "FULL"},
                             headers=headers, timeout=30).json()
        if found["state"] in TERMINAL:
            return found
        requests.get(f"{tes.url}/service-info", timeout=30)  # a short pause that does work
    raise AssertionError(f"task {task_id} did not finish")


def test_owners_do_not_share_shared_global(
    guarded: Tes, idp: IdentityProvider, canary: HostCanary
) -> None:
    name = f"note-{unique()}"
    secret = f"alice-private-{unique()}"
    alice = idp.token("alice")
    written = _run_as(guarded, alice, {
        "executors": [sh(f"echo {secret} > /tes-wd/shared-global/{name}")],
    })
    assert written["state"] == "COMPLETE", written
    peek = sh(f"ls -a /tes-wd/shared-global /tes-wd/shared-global/..; "
              f"cat /tes-wd/shared-global/{name} 2>/dev/null; true")
    others = [
        _run_as(guarded, idp.token("bob"), {"executors": [peek]}),
        # The same subject in another tenant is another owner.
        _run_as(guarded, idp.token("alice", tenant=OTHER_TENANT), {"executors": [peek]}),
    ]
    for task in others:
        assert task["state"] == "COMPLETE", task
        assert secret not in str(task) and name not in "".join(stdouts(task))
    again = _run_as(guarded, alice, {"executors": [sh(f"cat /tes-wd/shared-global/{name}")]})
    assert stdouts(again) == [secret + "\n"]  # kept for the same owner's later tasks

    owners = guarded.data_dir / "shared-global-owners"
    folders = [p.name for p in owners.iterdir()]
    assert len(folders) == 3 and all(len(f) == 32 and f.isalnum() for f in folders)
    assert not (guarded.data_dir / "shared-global" / name).exists()
    assert_no_leak(written, *others, again, canary=canary)
