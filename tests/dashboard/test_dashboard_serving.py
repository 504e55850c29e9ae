"""The dashboard's files, their security headers, its switch, and ``GET /task-counts``,
against real server processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.support import NO_RUNTIME, TIMEOUT, assert_error, create, task
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state


def root_of(server: ServerProcess) -> str:
    """``http://127.0.0.1:PORT`` of a server whose ``url`` ends with the API prefix."""
    return server.url.removesuffix("/ga4gh/tes/v1")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def counting_server(request, tmp_path_factory, postgres_url_factory_lazy
                    ) -> Iterator[ServerProcess]:
    """A server that runs nothing (tasks end SYSTEM_ERROR) and counts up to 3 per state,
    on SQLite, then on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"tes-dashboard-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    proc = ServerProcess(data_dir, server_env(data_dir, database, TES_COUNT_LIMIT="3",
                                              **NO_RUNTIME))
    yield proc.start()
    proc.stop()


@pytest.fixture(scope="module")
def switched_off(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server started with ``TES_DASHBOARD=false``."""
    data_dir = tmp_path_factory.mktemp("tes-no-dashboard")
    proc = ServerProcess(data_dir, server_env(data_dir, TES_DASHBOARD="false", **NO_RUNTIME))
    yield proc.start()
    proc.stop()


def test_root_serves_the_page_with_a_strict_policy(counting_server):
    response = requests.get(root_of(counting_server) + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Nothing inline for the policy to block: no script body, no style attribute, no handler.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
    assert not re.search(r"\sstyle=|\son[a-z]+=", response.text)


def test_every_asset_is_served_from_the_package_and_works_offline(counting_server):
    root = root_of(counting_server)
    page = requests.get(root + "/", timeout=TIMEOUT).text
    assets = re.findall(r'(?:href|src)="(/dashboard/[^"]+)"', page)
    assert {a.rsplit(".", 1)[1] for a in assets} == {"css", "js"}
    for asset in assets:
        response = requests.get(root + asset, timeout=TIMEOUT)
        assert response.status_code == 200, asset
        assert "Content-Security-Policy" in response.headers
        kind = response.headers["Content-Type"]
        assert ("css" in kind) if asset.endswith(".css") else ("javascript" in kind), kind
        assert not re.search(r"https?://", response.text), asset  # no CDN, no outside call
    config = requests.get(root + "/dashboard/config.json", timeout=TIMEOUT).json()
    assert config == {"api": "/ga4gh/tes/v1", "auth": False}


def test_the_script_never_writes_html(counting_server):
    """Text a task's author controls must never be parsed as HTML: the script has no
    ``innerHTML``, ``outerHTML``, ``insertAdjacentHTML``, ``document.write`` or ``eval``."""
    script = requests.get(root_of(counting_server) + "/dashboard/dashboard.js",
                          timeout=TIMEOUT).text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in script, sink


@pytest.mark.parametrize("name", ["secret.txt", "..%2F__init__.py", "index.html", "%2E%2E"])
def test_only_the_dashboards_own_files_are_served(counting_server, name):
    response = requests.get(f"{root_of(counting_server)}/dashboard/{name}", timeout=TIMEOUT)
    assert response.status_code == 404


def test_the_package_data_holds_every_file():
    """What ``pyproject.toml`` ships is what the page loads (a wheel built without them
    would serve a blank page)."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    assert "tes_core.dashboard" in tool["packages"]
    assert tool["package-data"]["tes_core.dashboard"] == ["static/*"]


def test_switched_off_root_leads_to_the_api_explorer(switched_off):
    root = root_of(switched_off)
    response = requests.get(root + "/", timeout=TIMEOUT)
    assert response.status_code == 200 and "SwaggerUIBundle" in response.text
    assert response.url.endswith("/ga4gh/tes/v1/ui/")
    assert requests.get(root + "/dashboard/dashboard.js", timeout=TIMEOUT).status_code == 404
    assert requests.get(root + "/dashboard/config.json", timeout=TIMEOUT).status_code == 404


def test_counts_by_state_follow_the_list_filters_and_their_bound(counting_server):
    url = counting_server.url
    ids = [create(url, task("true", name=f"count-a{i}", tags={"batch": "one"})) for i in range(4)]
    ids.append(create(url, task("true", name="count-b", tags={"batch": "two"})))
    for task_id in ids:
        wait_for_state(url, task_id, TERMINAL)

    def counts(**params: str) -> dict:
        response = requests.get(f"{url}/task-counts", params=params, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    assert counts(name_prefix="count-b") == {"counts": {"SYSTEM_ERROR": 1}, "capped": []}
    assert counts(tag_key="batch", tag_value="two") == {"counts": {"SYSTEM_ERROR": 1},
                                                         "capped": []}
    # Four match, counted up to TES_COUNT_LIMIT=3: "at least 3".
    assert counts(tag_key="batch", tag_value="one") == {"counts": {"SYSTEM_ERROR": 3},
                                                         "capped": ["SYSTEM_ERROR"]}
    assert counts(name_prefix="nothing-like-this") == {"counts": {}, "capped": []}
    # Unfiltered, each state is counted up to the bound on its own.
    assert counts() == {"counts": {"SYSTEM_ERROR": 3}, "capped": ["SYSTEM_ERROR"]}
    assert requests.get(f"{root_of(counting_server)}/v1/task-counts",
                        timeout=TIMEOUT).status_code == 200


def test_counts_refuse_bad_filters_naming_the_field(counting_server):
    url = counting_server.url
    assert_error(requests.get(f"{url}/task-counts", params={"state": "DONE"}, timeout=TIMEOUT),
                 400, "state")
    assert_error(requests.get(f"{url}/task-counts", params={"tag_value": "x"}, timeout=TIMEOUT),
                 400, "tag_value")


def test_an_oidc_client_is_offered_and_its_provider_may_be_called(tmp_path, idp):
    settings = idp.settings(TES_DASHBOARD_OIDC_CLIENT_ID="tes-dashboard")
    proc = ServerProcess(tmp_path, server_env(tmp_path, **settings, **NO_RUNTIME)).start()
    try:
        root = root_of(proc)
        config = requests.get(root + "/dashboard/config.json", timeout=TIMEOUT).json()
        assert config["auth"] is True
        assert config["oidc"] == {"issuer": idp.issuer, "client_id": "tes-dashboard",
                                  "scope": "openid"}
        policy = requests.get(root + "/", timeout=TIMEOUT).headers["Content-Security-Policy"]
        assert f"connect-src 'self' {idp.base};" in policy  # the provider's origin, only
        assert "script-src 'self';" in policy
    finally:
        proc.stop()
