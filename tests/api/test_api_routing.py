"""Where the API answers: the ``/v1`` alias, OPTIONS per route, and an empty state filter."""

from __future__ import annotations

import requests

from tests.api.support import API_SUFFIX, TIMEOUT, assert_error, create, task


def _root(url: str) -> str:
    assert url.endswith(API_SUFFIX)
    return url[: -len(API_SUFFIX)]


def test_the_api_answers_under_v1_too(norun_url: str) -> None:
    """py-tes 0.4 (Snakemake's TES executor, older cwl-tes) asks ``<address>/v1/tasks``."""
    alias = _root(norun_url) + "/v1"
    created = requests.post(f"{alias}/tasks", json=task("true"), timeout=TIMEOUT)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    for base in (alias, norun_url):
        got = requests.get(f"{base}/tasks/{task_id}", timeout=TIMEOUT)
        assert got.status_code == 200 and got.json()["id"] == task_id
    listed = requests.get(f"{alias}/tasks", params={"name_prefix": "", "page_size": 1000},
                          timeout=TIMEOUT).json()
    assert task_id in {t["id"] for t in listed["tasks"]}
    info = requests.get(f"{alias}/service-info", timeout=TIMEOUT)
    assert info.status_code == 200 and info.json()["type"]["artifact"] == "tes"
    cancel = requests.post(f"{alias}/tasks/{task_id}:cancel", json={}, timeout=TIMEOUT)
    assert cancel.status_code == 200 and cancel.json() == {}
    assert_error(requests.get(f"{alias}/tasks/no-such-task", timeout=TIMEOUT), 404)
    # py-tes 0.4's get_service_info (Toil's TES batch system calls it first) reads TES 0.3's
    # service info and refuses any other field.
    legacy = requests.get(f"{alias}/tasks/service-info", timeout=TIMEOUT)
    assert legacy.status_code == 200, legacy.text
    current = info.json()
    assert legacy.json() == {"name": current["name"], "doc": current["description"],
                             "storage": current["storage"]}
    assert_error(requests.get(f"{norun_url}/tasks/service-info", timeout=TIMEOUT), 404)
    # Only the alias itself: other paths starting with /v1 are not the API.
    assert requests.get(_root(norun_url) + "/v1tasks", timeout=TIMEOUT).status_code == 404


def test_options_answers_the_methods_of_each_route(norun_url: str) -> None:
    task_id = create(norun_url, task("true"))

    def allowed(path: str) -> set[str]:
        response = requests.options(norun_url + path, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return {m.strip() for m in response.headers["Allow"].split(",")}

    assert allowed("/tasks") == {"GET", "HEAD", "POST", "OPTIONS"}
    assert allowed(f"/tasks/{task_id}") == {"GET", "HEAD", "OPTIONS"}
    assert allowed(f"/tasks/{task_id}:cancel") == {"POST", "OPTIONS"}
    assert allowed("/service-info") == {"GET", "HEAD", "OPTIONS"}
    # GET on the cancel route is the wrong method, not an unknown task.
    assert_error(requests.get(f"{norun_url}/tasks/{task_id}:cancel", timeout=TIMEOUT), 405)


def test_an_empty_state_filter_is_a_400_like_any_unknown_state(norun_url: str) -> None:
    response = requests.get(f"{norun_url}/tasks", params={"state": ""}, timeout=TIMEOUT)
    assert_error(response, 400, "state")
