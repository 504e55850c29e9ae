"""The core alone (no plugins) accepts what every workflow engine sends; with the engines'
plugins installed, a create over HTTP stores the ``ms-submitter-*`` tags they detect.

The example documents are the shared fixtures (tests/submitters.py). Their files
do not exist here, so only acceptance and the stored document are checked.
The server's runtime cannot run anything (a dead Docker socket) and its HTTP
proxy is a closed local port, so no task can reach outside this machine.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import requests
import tes
from tes.utils import unmarshal

from tes_core.config import Settings
from tes_core.plugins import load_plugins
from tests.api.support import pytes_client
from tests.local.support import Tes, start_server, system_logs
from tests.submitters import SHARED_FIXTURES, fixture_engine, load_document

pytestmark = pytest.mark.timeout(120)

DOCUMENTS = sorted(SHARED_FIXTURES.glob("*.json"))
READ_ONLY = ("id", "state", "logs", "creation_time")
TAGGED = sorted(
    p for p in DOCUMENTS if fixture_engine(p.stem) in ("snakemake", "cwl-tes", "toil")
)
"""The engines whose plugins only tag (no URL rewriting, so no storage is needed)."""


def _isolated_server(tmp: Path, **env: str) -> Tes:
    """A server that cannot start any task (a dead Docker socket) nor reach outside this
    machine (its HTTP proxy is a closed local port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = start_server(
        tmp / "data",
        "docker",
        DOCKER_HOST=f"unix://{tmp}/no-engine.sock",
        TES_LOCAL_START_WITHOUT_RUNTIME="true",
        HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
        NO_PROXY="", no_proxy="",
        **env,
    )
    return Tes(server, "docker")


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server with every installed plugin disabled that cannot start any task."""
    plugins = ",".join(sorted({ep.name for ep in entry_points(group="tes")}))
    tes = _isolated_server(tmp_path_factory.mktemp("tes-submitters"),
                           TES_DISABLED_PLUGINS=plugins)
    yield tes
    tes.server.stop()


@pytest.fixture(scope="module")
def tagging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server with every installed plugin loaded that cannot start any task."""
    tes = _isolated_server(tmp_path_factory.mktemp("tes-tagging"))
    yield tes
    tes.server.stop()


def _expected(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the core shows it in the BASIC view: the normalisations TES allows,
    without the inputs' ``content`` (BASIC leaves it out), nothing else."""
    expected = copy.deepcopy(document)
    for item in expected.get("inputs", []) + expected.get("outputs", []):
        item.setdefault("type", "FILE")  # the server fills in FILE
        item.pop("content", None)
    if "backend_parameters" in expected.get("resources", {}):
        # The local backend supports only "network": other keys are neither stored nor returned.
        params = expected["resources"]["backend_parameters"]
        expected["resources"]["backend_parameters"] = {
            k: v for k, v in params.items() if k.lower() == "network"
        }
    if "tags" in expected:
        # Tags are string maps; Cromwell's JSON null (parent_workflow_id) is kept as "".
        expected["tags"] = {k: "" if v is None else v for k, v in expected["tags"].items()}
    return expected


def test_fixtures_are_there() -> None:
    names = [p.name for p in DOCUMENTS]
    assert any(n.startswith("cromwell") for n in names), SHARED_FIXTURES
    assert any(n.startswith("nextflow") for n in names), SHARED_FIXTURES
    assert {fixture_engine(p.stem) for p in TAGGED} == {"snakemake", "cwl-tes", "toil"}


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.stem for p in DOCUMENTS])
def test_submitter_document_accepted_and_round_trips(bare: Tes, path: Path) -> None:
    document = load_document(path.stem)
    response = requests.post(f"{bare.url}/tasks", json=document, timeout=30)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]

    basic = bare.get(task_id, "BASIC")
    stored = {k: v for k, v in basic.items() if k not in READ_ONLY}
    assert stored == _expected(document)
    assert basic["id"] == task_id
    assert basic["creation_time"]
    sent = [item.get("content") for item in document.get("inputs", [])]
    if any(sent):
        full = bare.get(task_id, "FULL")
        assert [item.get("content") for item in full["inputs"]] == sent

    # Unsupported backend_parameters are reported in the task's system logs.
    dropped = [
        k for k in (document.get("resources") or {}).get("backend_parameters") or {}
        if k.lower() != "network"
    ]
    if dropped:
        full = bare.get(task_id, "FULL")
        assert all(key in system_logs(full) for key in dropped), system_logs(full)


@pytest.mark.parametrize("path", TAGGED, ids=[p.stem for p in TAGGED])
def test_a_create_over_http_stores_the_detected_submitter_tags(
    tagging: Tes, path: Path
) -> None:
    """What the engine's plugin detects, in process, is what the server stores and shows."""
    engine = fixture_engine(path.stem)
    detected = load_plugins(Settings.from_env({}), require_backend=False).detect_submitter(
        load_document(path.stem)
    )
    if detected is None or detected.name != engine:
        pytest.skip(f"the {engine} plugin is not installed")
    document = load_document(path.stem)
    document.setdefault("tags", {})["user-tag"] = "kept"

    stored = tagging.get(tagging.submit(document), "BASIC")

    submitter_tags = {k: v for k, v in stored["tags"].items() if k.startswith("ms-submitter-")}
    assert submitter_tags == detected.tags()
    assert submitter_tags["ms-submitter-name"] == engine
    assert "ms-submitter-workflow-stage" in submitter_tags
    assert stored["tags"]["user-tag"] == "kept"
    minimal = tagging.get(stored["id"], "MINIMAL")
    assert set(minimal) == {"id", "state"}


@pytest.mark.parametrize("path", TAGGED, ids=[p.stem for p in TAGGED])
def test_the_real_client_sends_each_engine_task_and_it_is_tagged(
    tagging: Tes, path: Path
) -> None:
    """The engines send through py-tes: its models and serialisation, then its create."""
    engine = fixture_engine(path.stem)
    task = unmarshal(load_document(path.stem), tes.Task)
    client = pytes_client(tagging.url)

    stored = client.get_task(client.create_task(task), view="BASIC")

    if engine in {ep.name for ep in entry_points(group="tes")}:
        assert stored.tags["ms-submitter-name"] == engine
    else:
        assert not any(key.startswith("ms-submitter-") for key in stored.tags or {})


def test_a_near_miss_over_http_gets_no_submitter_tags(tagging: Tes) -> None:
    near = Path(__file__).resolve().parents[2] / "plugins" / "tes_snakemake" / "tests" / "documents"
    if not near.is_dir():
        pytest.skip("tes-snakemake's documents are not here")
    stored = tagging.get(tagging.submit(load_document("near-script-does-not-run-snakemake", near)),
                         "BASIC")
    assert not any(key.startswith("ms-submitter-") for key in stored.get("tags") or {})
