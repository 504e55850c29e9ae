"""With tokens required, a user's stream carries only their own tasks' events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.api.support import task
from tests.events.support import Listener, finished, states
from tests.servers import ServerProcess, server_env


@pytest.fixture(scope="module")
def auth_server(idp, tmp_path_factory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("tes-events-auth")
    proc = ServerProcess(data_dir, server_env(data_dir, **idp.settings())).start()
    yield proc
    proc.stop()


def _create(url: str, token: str, document: dict) -> str:
    answer = requests.post(f"{url}/tasks", json=document, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def test_each_user_hears_only_of_their_own_tasks(auth_server, idp):
    alice, bob = idp.token("alice"), idp.token("bob")
    admin = idp.token("root", roles=["TES.Admin"])
    hears_alice = Listener(auth_server.url, token=alice)
    # EventSource cannot send headers: Bob's browser puts the token in the query.
    hears_bob = Listener(auth_server.url, [("access_token", bob)])
    hears_all = Listener(auth_server.url, token=admin)
    try:
        alices = _create(auth_server.url, alice, task("true", name="alice-task"))
        assert states(hears_alice.until(finished(alices)))[-1] == "COMPLETE"
        bobs = _create(auth_server.url, bob, task("true", name="bob-task"))
        heard_by_bob = hears_bob.until(finished(bobs))
        seen_by_admin = hears_all.until(finished(bobs))
    finally:
        for listener in (hears_alice, hears_bob, hears_all):
            listener.close()
    assert {json.loads(e.data)["task_id"] for e in heard_by_bob} == {bobs}
    assert {json.loads(e.data)["task_id"] for e in seen_by_admin} == {alices, bobs}


def test_a_stream_needs_a_valid_token(auth_server, idp):
    for params, headers in (({}, {}), ({"access_token": "forged"}, {}),
                            ({}, {"Authorization": "Bearer forged"})):
        answer = requests.get(f"{auth_server.url}/events", params=params, headers=headers,
                              timeout=10)
        assert answer.status_code == 401, answer.text
    # The query token is for the stream only, not for the rest of the API.
    answer = requests.get(f"{auth_server.url}/tasks", params={"access_token": idp.token()},
                          timeout=10)
    assert answer.status_code == 401
