"""The real cwl-tes 0.3.0 runs a two-step workflow on a real ``tes-server serve``.

cwl-tes cannot be a ``[test]`` extra: its pinned cwltool 1.0.20191022103248 needs an
``rdflib-jsonld`` that only builds with setuptools < 58 (see the README), and its old pins
(``ruamel.yaml<=0.16``, ``rdflib<4.3``, ``prov==1.5.1``) do not belong in the test
environment. So it is installed once into its own virtualenv, kept between sessions under
``TES_ENGINE_VENVS`` (default ``~/.cache/tes-core/engines``); the first install takes about a
minute and needs PyPI, each later run about ten seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.local.support import Tes, require_runtime, start_server

pytestmark = pytest.mark.timeout(900)

CWL_TES = "cwl-tes==0.3.0"
VENVS = Path(os.environ.get("TES_ENGINE_VENVS", Path.home() / ".cache" / "tes-core" / "engines"))

GREET = """\
cwlVersion: v1.0
class: CommandLineTool
hints:
  DockerRequirement: {dockerPull: alpine}
baseCommand: echo
inputs:
  who: {type: string, inputBinding: {position: 1}}
stdout: hello.txt
outputs:
  out: {type: stdout}
"""
SHOUT = """\
cwlVersion: v1.0
class: CommandLineTool
hints:
  DockerRequirement: {dockerPull: alpine}
baseCommand: [tr, a-z, A-Z]
inputs:
  text: {type: File}
stdin: $(inputs.text.path)
stdout: shout.txt
outputs:
  out: {type: stdout}
"""
WORKFLOW = """\
cwlVersion: v1.0
class: Workflow
inputs:
  who: string
outputs:
  shouted: {type: File, outputSource: shout/out}
steps:
  greet: {run: greet.cwl, in: {who: who}, out: [out]}
  shout: {run: shout.cwl, in: {text: greet/out}, out: [out]}
"""


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"installing {args[-1]} failed: {done.stderr[-2000:]}")


@pytest.fixture(scope="session")
def cwl_tes() -> Path:
    """The ``cwl-tes`` command of a virtualenv holding cwl-tes 0.3.0 (installed once)."""
    venv = VENVS / CWL_TES.replace("==", "-")
    command = venv / "bin" / "cwl-tes"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        _pip(venv, "setuptools<58", "wheel")
        _pip(venv, "--no-build-isolation", CWL_TES)
    return command


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A real server running executors in bubblewrap (which ignores the image)."""
    require_runtime("bubblewrap")
    process = start_server(tmp_path_factory.mktemp("cwltes-server"), "bubblewrap")
    try:
        yield Tes(process, "bubblewrap")
    finally:
        process.stop()


def test_cwl_tes_runs_a_workflow_and_its_tasks_are_tagged(
    cwl_tes: Path, server: Tes, tmp_path: Path
) -> None:
    for name, text in (("greet.cwl", GREET), ("shout.cwl", SHOUT), ("wf.cwl", WORKFLOW)):
        (tmp_path / name).write_text(text)
    (tmp_path / "job.yml").write_text("who: hello cwl-tes\n")
    address = server.url.split("/ga4gh/")[0]
    run = subprocess.run(
        [str(cwl_tes), "--tes", address, "--outdir", str(tmp_path / "out"),
         "wf.cwl", "job.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "shout.txt").read_text() == "HELLO CWL-TES\n"
    listed = requests.get(f"{server.url}/tasks", params={"view": "BASIC"}, timeout=30).json()
    tags = {task["name"]: (task["state"], task.get("tags", {})) for task in listed["tasks"]}
    for step in ("greet", "shout"):
        state, step_tags = tags[step]
        assert state == "COMPLETE"
        assert step_tags["ms-submitter-name"] == "cwl-tes"
        assert step_tags["ms-submitter-workflow-stage"] == step
        assert step_tags["CWLDocumentId"] == f"file://{tmp_path}/{step}.cwl"
