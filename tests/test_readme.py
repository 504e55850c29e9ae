"""The README's "A first task" works as written, and its table of contents is whole.

Each first-task block follows a marker comment (``<!-- first-task: curl -->``,
``<!-- first-task: py-tes -->``). Its first line sets the address the server
printed; that line is the only one this test changes (to the address of its own
server, started as ``scripts/serve`` starts it, with the embedded defaults).
Everything else runs literally: the shell block with ``bash -euo pipefail``, the
Python block with this interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers import NO_TEST_ALLOW_LISTS, ServerProcess, server_env

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_URL = "http://127.0.0.1:8000/ga4gh/tes/v1"
ADDRESS_LINES = {
    "curl": f"TES={EXAMPLE_URL}   # the address tes-server printed",
    "py-tes": f'TES = "{EXAMPLE_URL}"  # the address tes-server printed',
}
"""The first line of each block, exactly as the README has it."""

BLOCK = re.compile(
    r"^<!-- first-task: (?P<name>[\w-]+) -->\n```\w+\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL
)
RUN_TIMEOUT = 180  # seconds; a first pull of alpine on a slow network is the long part


def first_task_blocks() -> dict[str, str]:
    """The README's first-task blocks by marker name."""
    found: dict[str, str] = {}
    for match in BLOCK.finditer(README.read_text()):
        assert match["name"] not in found, f"two README blocks marked first-task: {match['name']}"
        found[match["name"]] = match["code"]
    return found


def with_address(name: str, url: str) -> str:
    """Block ``name`` with its first line pointing at ``url`` instead of the example's."""
    code = first_task_blocks()[name]
    first, _, rest = code.partition("\n")
    assert first == ADDRESS_LINES[name], (
        f"the README's {name} block must start with the address line {ADDRESS_LINES[name]!r}"
    )
    return first.replace(EXAMPLE_URL, url) + "\n" + rest


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """``tes-server serve`` with the embedded defaults (access policy included)."""
    data_dir = tmp_path_factory.mktemp("tes-readme")
    proc = ServerProcess(data_dir, server_env(data_dir, **NO_TEST_ALLOW_LISTS)).start()
    try:
        yield proc
    finally:
        proc.stop()


def finished_tasks(url: str, name: str) -> list[dict]:
    """FULL views of the server's tasks called ``name``."""
    reply = requests.get(f"{url}/tasks", params={"name_prefix": name, "view": "FULL"}, timeout=10)
    reply.raise_for_status()
    return [task for task in reply.json()["tasks"] if task["name"] == name]


def test_the_readme_marks_both_blocks():
    assert set(first_task_blocks()) == set(ADDRESS_LINES)


def test_the_ready_lines_are_the_ones_the_readme_shows(readme_server):
    shown = re.search(r"^```text\n(TES server ready at \S+)\n(.*?)^```$", README.read_text(),
                      re.MULTILINE | re.DOTALL)
    assert shown, "the README shows the lines tes-server prints when ready"
    port = readme_server.url.split(":")[2].split("/")[0]
    assert shown[1].replace(":8000/", f":{port}/") in readme_server.output, readme_server.log()
    labels = re.findall(r"^(  \w+: )", shown[2], re.MULTILINE)  # values vary by machine

    def all_shown(lines: list[str]) -> bool:
        return all(any(line.startswith(label) for line in lines) for label in labels)

    assert readme_server.wait_for_output(all_shown), readme_server.log()


def test_curl_block_runs_as_written(readme_server, tmp_path):
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", with_address("curl", readme_server.url)],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{readme_server.log()}"
    states = [line for line in done.stdout.splitlines() if line.isupper()]
    assert states and states[-1] == "COMPLETE", done.stdout
    assert '"stdout": "hello TES\\n"' in done.stdout, done.stdout
    (task,) = finished_tasks(readme_server.url, "hello")
    assert task["id"] in done.stdout
    assert task["logs"][0]["logs"][0]["stdout"] == "hello TES\n"


def test_py_tes_block_runs_as_written(readme_server, tmp_path):
    out = Path("/tmp/tes-out/out.txt")  # where the README's task writes
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", with_address("py-tes", readme_server.url)],
        cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{readme_server.log()}"
    assert done.stdout.splitlines()[:2] == ["COMPLETE", "HELLO FROM AN INPUT"], done.stdout
    assert out.read_text() == "HELLO FROM AN INPUT\n"
    (task,) = finished_tasks(readme_server.url, "hello-py-tes")
    assert task["state"] == "COMPLETE"
    outputs = [(output["path"], output["url"]) for output in task["logs"][0]["outputs"]]
    assert outputs == [("/data/out.txt", str(out))]


def test_table_of_contents_matches_the_headings():
    text = README.read_text()
    contents = re.search(r"^\*\*Contents:\*\*(?P<links>.*?)\n\n", text, re.MULTILINE | re.DOTALL)
    assert contents, "the README has a '**Contents:**' paragraph"
    listed = re.findall(r"\[([^\]]+)\]\(#([\w-]+)\)", contents["links"])
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert [title for title, _ in listed] == headings, "list every ## heading, in order"
    for title, anchor in listed:
        assert anchor == re.sub(r"[^\w -]", "", title.lower()).replace(" ", "-"), title
