from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def run_cli(*args: str, module: str = "tes_filetransfer.cli") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")]))
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )


def write_task(path: Path, **fields: Any) -> Path:
    path.write_text(json.dumps({"executors": [{"image": "x", "command": ["true"]}], **fields}))
    return path


def test_stage_inputs_and_upload_outputs(tmp_path: Path, http_server: Any) -> None:
    (http_server.root / "in.txt").write_text("remote")
    local = tmp_path / "local.txt"
    local.write_text("local")
    root = tmp_path / "root"
    task = write_task(
        tmp_path / "task.json",
        inputs=[
            {"url": http_server.url("in.txt"), "path": "/data/in.txt"},
            {"url": str(local), "path": "/data/local.txt"},
            {"content": "inline", "path": "/data/inline.txt"},
        ],
        outputs=[{"path": "/data/*.txt", "path_prefix": "/data/", "url": http_server.url("o")}],
    )
    staged = run_cli("stage-inputs", "--task", str(task), "--root", str(root))
    assert staged.returncode == 0, staged.stderr
    assert len(staged.stdout.strip().splitlines()) == 3
    assert (root / "data/in.txt").read_text() == "remote"
    assert (root / "data/inline.txt").read_text() == "inline"

    log = tmp_path / "logs/out.json"
    uploaded = run_cli(
        "upload-outputs", "--task", str(task), "--root", str(root), "--log", str(log)
    )
    assert uploaded.returncode == 0, uploaded.stderr
    entries = json.loads(log.read_text())
    assert [e["path"] for e in entries] == ["/data/in.txt", "/data/inline.txt", "/data/local.txt"]
    assert all(isinstance(e["size_bytes"], str) for e in entries)
    assert (http_server.root / "o/local.txt").read_text() == "local"


def test_upload_outputs_prints_json_without_log(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "out").mkdir(parents=True)
    (root / "out/x").write_text("xyz")
    task = write_task(
        tmp_path / "t.json", outputs=[{"path": "/out/x", "url": str(tmp_path / "dest/x")}]
    )
    result = run_cli(
        "upload-outputs", "--task", str(task), "--root", str(root), module="tes_filetransfer"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"url": str(tmp_path / "dest/x"), "path": "/out/x", "size_bytes": "3"}
    ]


def test_failure_exits_1_with_one_line(tmp_path: Path, http_server: Any) -> None:
    task = write_task(
        tmp_path / "t.json",
        inputs=[{"name": "ref", "url": http_server.url("no.txt") + "?sig=T0pS3cret",
                 "path": "/no.txt"}],
    )
    result = run_cli("stage-inputs", "--task", str(task), "--root", str(tmp_path / "r"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tes-filetransfer: error: input 'ref' (/no.txt): HTTP 404")
    assert "T0pS3cret" not in result.stderr + result.stdout


def test_verbose_logs_transfers(tmp_path: Path, http_server: Any) -> None:
    (http_server.root / "v.txt").write_text("v")
    task = write_task(
        tmp_path / "t.json",
        inputs=[{"url": http_server.url("v.txt") + "?sig=T0pS3cret", "path": "/v.txt"}],
    )
    result = run_cli(
        "stage-inputs", "--task", str(task), "--root", str(tmp_path / "r"), "--verbose"
    )
    assert result.returncode == 0, result.stderr
    assert "start download http://127.0.0.1" in result.stderr
    assert "done download" in result.stderr
    assert "T0pS3cret" not in result.stderr + result.stdout


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_bad_task_file_exits_1(tmp_path: Path, content: str) -> None:
    task = tmp_path / "t.json"
    task.write_text(content)
    result = run_cli("stage-inputs", "--task", str(task), "--root", str(tmp_path / "r"))
    assert result.returncode == 1
    assert result.stderr.startswith("tes-filetransfer: error: task file")


def test_missing_output_exits_1(tmp_path: Path) -> None:
    task = write_task(tmp_path / "t.json", outputs=[{"path": "/gone", "url": "/tmp/x"}])
    (tmp_path / "r").mkdir()
    result = run_cli("upload-outputs", "--task", str(task), "--root", str(tmp_path / "r"))
    assert result.returncode == 1 and "output /gone" in result.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert run_cli("stage-inputs").returncode == 2
