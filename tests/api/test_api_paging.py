"""GET /tasks paging: page_size (default 256, below 2048, honoured exactly),
next_page_token (only when there is more, opaque), newest-first order that stays stable
while tasks are created. On servers that never run a task, so hundreds are cheap."""

from __future__ import annotations

import uuid

import pytest

from tests.api.support import assert_timestamp, create, list_tasks, task, walk


@pytest.fixture(scope="module")
def many(norun_server):
    """More than one default page of tasks (257 of them, tagged), oldest first."""
    key = "batch-" + uuid.uuid4().hex[:8]
    ids = [create(norun_server.url, task("true", tags={key: str(i)})) for i in range(257)]
    return norun_server.url, key, ids


def _tagged(key: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("tag_key", key), *extra]


def test_default_page_size_is_256(many):
    url, key, ids = many
    page = list_tasks(url, _tagged(key))
    assert [t["id"] for t in page["tasks"]] == ids[::-1][:256]
    assert isinstance(page.get("next_page_token"), str)
    rest = list_tasks(url, _tagged(key, ("page_token", page["next_page_token"])))
    assert rest == {"tasks": [{"id": ids[0], "state": rest["tasks"][0]["state"]}]}
    assert len(list_tasks(url)["tasks"]) == 256


@pytest.mark.parametrize("size", [1, 2, 7, 100, 255, 256])
def test_page_size_is_honoured_exactly(many, size):
    url, key, ids = many
    page = list_tasks(url, _tagged(key, ("page_size", str(size))))
    assert [t["id"] for t in page["tasks"]] == ids[::-1][:size]
    assert "next_page_token" in page


@pytest.mark.parametrize("size", [257, 258, 2047])
def test_no_token_when_everything_fits(many, size):
    url, key, ids = many
    page = list_tasks(url, _tagged(key, ("page_size", str(size))))
    assert [t["id"] for t in page["tasks"]] == ids[::-1]
    assert "next_page_token" not in page


def test_no_token_after_an_exactly_full_last_page(norun_server):
    url, key = norun_server.url, "exact-" + uuid.uuid4().hex[:8]
    ids = [create(url, task("true", tags={key: ""})) for _ in range(10)]
    first = list_tasks(url, _tagged(key, ("page_size", "5")))
    second = list_tasks(url, _tagged(key, ("page_size", "5"),
                                      ("page_token", first["next_page_token"])))
    assert [t["id"] for t in first["tasks"] + second["tasks"]] == ids[::-1]
    assert "next_page_token" not in second
    whole = list_tasks(url, _tagged(key, ("page_size", "10")))
    assert "next_page_token" not in whole and len(whole["tasks"]) == 10
    assert list_tasks(url, _tagged("no-such-key-" + key)) == {"tasks": []}


@pytest.mark.parametrize("size", ["1", "7", "64"])
def test_walking_all_pages_gives_every_task_once_newest_first(many, size):
    url, key, ids = many
    seen = [t["id"] for t in walk(url, _tagged(key, ("page_size", size)))]
    assert seen == ids[::-1]


@pytest.mark.parametrize("view", ["BASIC", "FULL"])
def test_walking_in_other_views_gives_the_same_order(many, view):
    url, key, ids = many
    seen = walk(url, _tagged(key, ("page_size", "100"), ("view", view)))
    assert [t["id"] for t in seen] == ids[::-1]
    times = [assert_timestamp(t["creation_time"]) for t in seen]
    assert times == sorted(times, reverse=True)


def test_walking_the_whole_server(many):
    url, _, ids = many
    seen = [t["id"] for t in walk(url, [("page_size", "50")])]
    assert len(seen) == len(set(seen))
    positions = [seen.index(task_id) for task_id in ids]
    assert positions == sorted(positions, reverse=True)


def test_pages_are_stable_while_tasks_are_created(norun_server):
    url, key = norun_server.url, "stable-" + uuid.uuid4().hex[:8]
    ids = [create(url, task("true", tags={key: ""})) for _ in range(20)]
    seen: list[str] = []
    newer: list[str] = []
    token = None
    while True:
        params = _tagged(key, ("page_size", "3")) + ([("page_token", token)] if token else [])
        page = list_tasks(url, params)
        seen += [t["id"] for t in page["tasks"]]
        newer.append(create(url, task("true", tags={key: ""})))
        token = page.get("next_page_token")
        if not token:
            break
    assert seen == ids[::-1]
    first = list_tasks(url, _tagged(key, ("page_size", str(len(newer)))))
    assert [t["id"] for t in first["tasks"]] == newer[::-1]


def test_page_token_is_opaque(many):
    url, key, ids = many
    token = list_tasks(url, _tagged(key, ("page_size", "3")))["next_page_token"]
    assert isinstance(token, str) and token
    assert not token.isdigit()
    assert not any(task_id in token for task_id in ids)
    # It round-trips through a URL untouched.
    again = list_tasks(url, _tagged(key, ("page_size", "3"), ("page_token", token)))
    assert [t["id"] for t in again["tasks"]] == ids[::-1][3:6]
