"""The ``tes`` command-line client as a user runs it, against a real server process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tes_core.client.http import ClientError
from tests.api.support import create, executor, task
from tests.events.support import Listener
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    """Three event streams at most: a test takes them all to make the client poll."""
    data_dir = tmp_path_factory.mktemp("tes-cli")
    proc = ServerProcess(data_dir, server_env(data_dir, TES_EVENTS_MAX_CLIENTS="3")).start()
    yield proc
    proc.stop()


def tes(*args: str, url: str | None = None, env: dict[str, str] | None = None,
        stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``tes ARGS`` (``TES_URL`` set to ``url``; no config file of the user's)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TES_")}
    environ["TES_CONFIG"] = "/nonexistent/tes-config.toml"
    if url:
        environ["TES_URL"] = url
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "tes_core.client.cli", *args], env=environ,
                          capture_output=True, text=True, timeout=timeout, input=stdin,
                          check=False)


def test_run_wait_prints_the_id_and_exits_0_when_complete(server):
    done = tes("run", "--name", "cli-ok", "--image", "alpine", "-e", "WHO=world", "--tag",
               "k=v", "--cpu", "1", "--ram", "0.5", "--wait", "--", "sh", "-c", "echo hi $WHO",
               url=server.url)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert "COMPLETE" in done.stderr
    got = tes("get", task_id, "--view", "FULL", url=server.url)
    document = json.loads(got.stdout)
    assert document["name"] == "cli-ok" and document["tags"] == {"k": "v"}
    assert document["executors"][0]["env"] == {"WHO": "world"}
    assert document["resources"]["cpu_cores"] == 1
    assert document["logs"][0]["logs"][0]["stdout"] == "hi world\n"
    logs = tes("logs", task_id, "--stream", "stdout", url=server.url)
    assert logs.returncode == 0 and "hi world" in logs.stdout, logs


def test_a_failed_task_is_exit_1_and_a_refused_request_exit_3(server):
    failed = tes("run", "--image", "alpine", "--wait", "--", "sh", "-c", "exit 4", url=server.url)
    assert failed.returncode == 1, failed
    assert "EXECUTOR_ERROR" in failed.stderr
    unknown = tes("get", "no-such-task", url=server.url)
    assert unknown.returncode == 3 and "404" in unknown.stderr, unknown
    bad = tes("submit", "-", stdin='{"executors": []}', url=server.url)
    assert bad.returncode == 3 and "executors" in bad.stderr, bad


def test_usage_mistakes_are_exit_2_and_no_server_exit_4(server, tmp_path):
    assert tes("run", "--", "true", url=server.url).returncode == 2  # no --image
    assert tes("frobnicate", url=server.url).returncode == 2
    no_command = tes("run", "--image", "alpine", url=server.url)
    assert no_command.returncode == 2 and "command" in no_command.stderr
    bad_env = tes("run", "--image", "alpine", "-e", "NOVALUE", "--", "true", url=server.url)
    assert bad_env.returncode == 2 and "-e takes KEY=VALUE" in bad_env.stderr
    not_a_task = tes("submit", "-", stdin="[1, 2]", url=server.url)
    assert not_a_task.returncode == 2 and "does not hold a task" in not_a_task.stderr
    gone = tes("info", url="http://127.0.0.1:9")
    assert gone.returncode == 4 and "cannot reach" in gone.stderr, gone
    missing = tes("--config", str(tmp_path / "none.toml"), "info")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_submit_a_yaml_file_with_inputs_and_outputs(server, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a\nb\n")
    document = {"name": "cli-yaml", "inputs": [{"url": str(source), "path": "/data/in.txt"}],
                "outputs": [{"path": "/data/n", "url": str(tmp_path / "n.txt")}],
                "executors": [{"image": "alpine",
                               "command": ["sh", "-c", "wc -l < /data/in.txt > /data/n"]}]}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(document))
    done = tes("submit", str(tmp_path / "task.yaml"), "--wait", url=server.url)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "n.txt").read_text().strip() == "2"
    flags = tes("run", "--image", "alpine", "--input", f"{source}:/data/in.txt", "--output",
                f"/data/copy:{tmp_path / 'copy.txt'}", "--wait", "--", "cp", "/data/in.txt",
                "/data/copy", url=server.url)
    assert flags.returncode == 0, flags.stderr
    assert (tmp_path / "copy.txt").read_text() == "a\nb\n"


def test_list_filters_and_formats(server):
    ids = [create(server.url, task("true", name=f"cli-list-{n}", tags={"batch": "7"}))
           for n in range(3)]
    as_json = json.loads(tes("list", "--name-prefix", "cli-list-", "-o", "json",
                             url=server.url).stdout)
    assert [t["id"] for t in as_json["tasks"]] == ids[::-1]
    as_yaml = yaml.safe_load(tes("list", "--tag", "batch=7", "-o", "yaml", "--page-size", "2",
                                 url=server.url).stdout)
    assert len(as_yaml["tasks"]) == 2 and as_yaml["next_page_token"]
    every = json.loads(tes("list", "--tag", "batch=7", "--page-size", "2", "--all", "-o", "json",
                           url=server.url).stdout)
    assert {t["id"] for t in every["tasks"]} == set(ids) and "next_page_token" not in every
    table = tes("list", "--name-prefix", "cli-list-", url=server.url).stdout.splitlines()
    assert table[0].split() == ["ID", "STATE", "NAME", "CREATED"] and len(table) == 4
    assert all(task_id in "\n".join(table) for task_id in ids)


def test_cancel_and_wait_through_events_and_by_polling(server):
    slow = create(server.url, task("sleep", "60"))
    wait_for_state(server.url, slow, {"RUNNING"})
    cancelled = tes("cancel", slow, url=server.url)
    assert cancelled.returncode == 0 and slow in cancelled.stdout
    waited = tes("wait", slow, url=server.url)
    assert waited.returncode == 1 and "CANCELED" in waited.stderr, waited
    # Every stream taken: wait polls, and still sees the end.
    holders = _take_every_stream(server.url)
    try:
        quick = create(server.url, task("sleep", "2"))
        polled = tes("wait", quick, "--quiet", url=server.url)
        assert polled.returncode == 0 and polled.stderr == "", polled
    finally:
        for holder in holders:
            holder.close()
    timed_out = tes("wait", create(server.url, task("sleep", "30")), "--timeout", "1",
                    url=server.url)
    assert timed_out.returncode == 5, timed_out


def _take_every_stream(url: str) -> list[Listener]:
    """Open streams until the server refuses one (earlier clients' places free within
    about a second of their leaving)."""
    holders: list[Listener] = []
    while True:
        try:
            holders.append(Listener(url, patience=2.0))
        except ClientError as exc:
            assert exc.status == 503, exc
            return holders
        assert len(holders) <= 3, "TES_EVENTS_MAX_CLIENTS=3 let a fourth stream open"


PAD = "x" * 400
PRINT = ('i={first}; while [ $i -le {last} ]; do echo "line-$i-{pad}"; echo "err-$i" >&2; '
         "i=$((i+1)); done")
"""Numbered lines: 20 of them are 8 KiB, so 40 are more than the stored 10 KiB tail."""


def test_logs_follow_prints_the_output_as_it_comes_each_line_once(server):
    """Half the lines, then the executor waits for the test: they must be printed while
    it waits (read live, not from the tails at the end); then the rest, each line once and
    in order, an executor with its own stdout file from its stored tail, and exit code 1
    for the task's EXECUTOR_ERROR."""
    script = (PRINT.format(first=1, last=20, pad=PAD)
              + "; while [ ! -e /tes-wd/go ]; do sleep 0.1; done; "
              + PRINT.format(first=21, last=40, pad=PAD))
    task_id = create(server.url, {"executors": [
        executor("sh", "-c", script),
        executor("sh", "-c", "echo own-file-line; exit 3", stdout="/tes-wd/own.txt"),
    ]})
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TES_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tes_core.client.cli", "--url", server.url, "logs", task_id,
         "--follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timed assertion
        while not any(line.startswith("line-20-") for line in out):
            assert proc.poll() is None and time.monotonic() < deadline, (out, proc.poll())
            time.sleep(0.1)
        assert wait_for_state(server.url, task_id, {"RUNNING"})["state"] == "RUNNING"
        (server.data_dir / "tasks" / task_id / "tes-wd" / "go").touch()
        err = proc.stderr.read()
        proc.wait(120)
    finally:
        proc.kill()
        reader.join(10)
    assert proc.returncode == 1, (proc.returncode, err)
    assert out == [f"line-{i}-{PAD}\n" for i in range(1, 41)] + ["own-file-line\n"], out
    errs = [line for line in err.splitlines() if line.startswith("err-")]
    assert errs == [f"err-{i}" for i in range(1, 41)], err
    assert "executor 0 ended, exit code 0" in err and "executor 1 stdout (its end)" in err, err
    assert wait_for_state(server.url, task_id, TERMINAL)["state"] == "EXECUTOR_ERROR"


def test_url_and_token_from_the_config_file_flags_win(server, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{server.url}"\ntoken = "unused-without-auth"\n')
    info = tes("info", env={"TES_CONFIG": str(config)})
    assert info.returncode == 0 and json.loads(info.stdout)["type"]["artifact"] == "tes"
    bare = server.url.removesuffix("/ga4gh/tes/v1")  # a bare address gets the API path
    assert tes("info", "-o", "yaml", "--url", bare, env={"TES_URL": "http://127.0.0.1:9"}
               ).returncode == 0
    broken = tmp_path / "broken.toml"
    broken.write_text("url = ")
    bad = tes("info", "--config", str(broken))
    assert bad.returncode == 2 and "broken.toml" in bad.stderr


def test_watch_prints_each_event(server):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tes_core.client.cli", "--url", server.url, "watch",
         "--name-prefix", "cli-watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={k: v for k, v in os.environ.items() if not k.startswith("TES_")},
    )
    try:
        assert proc.stderr is not None and "watching" in proc.stderr.readline()
        task_id = create(server.url, task("true", name="cli-watch-1"))
        assert proc.stdout is not None
        lines = []
        while not any("COMPLETE" in line for line in lines):
            lines.append(proc.stdout.readline())
            assert lines[-1], lines
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(task_id in line for line in lines) and "RUNNING" in "".join(lines), lines


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "tes"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "exit codes" in done.stdout
