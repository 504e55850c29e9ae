"""Every distribution builds as a wheel and an sdist with complete metadata, and the
wheels of tes-filetransfer, tes-runner and tes-core alone make a working server in a clean venv.

The clean venv is the plain install a user gets (issue 18): no cloud SDK importable, the
server starts and runs a task with a local input, an ``s3://`` input is refused naming
``tes-filetransfer[s3]`` (by the server and by the filetransfer command), and after
installing that extra the same server accepts it. Needs a container runtime
(``scripts/test-services.sh``) and the ``build`` and ``setuptools>=77`` of the test extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from email.parser import Parser
from pathlib import Path

import pytest
import requests

from tests.api.support import assert_error, create, get_task
from tests.servers import TERMINAL, ChildServer, server_env, wait_for_state

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = [REPO / "filetransfer", REPO, REPO / "runner",
                 *sorted((REPO / "plugins").iterdir())]
CLOUD_MODULES = ("adlfs", "azure.storage.blob", "azure.identity", "azure.core", "s3fs",
                 "aiobotocore", "botocore", "boto3", "gcsfs", "google.cloud.storage",
                 "aiohttp")
S3_EXTRA = "tes-filetransfer[s3]"


def _run(*argv: str | Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """Wheels and sdists of every distribution (the wheel is built from the sdist, so a
    file missing from the sdist fails here)."""
    out = tmp_path_factory.mktemp("dist")
    sources = [s for s in DISTRIBUTIONS if (s / "pyproject.toml").is_file()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda source: _run(sys.executable, "-m", "build", "--no-isolation",
                                          "--outdir", out, source), sources))
    return out


def _metadata(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def test_every_distribution_has_a_wheel_and_sdist_with_full_metadata(dist: Path) -> None:
    sources = [s for s in DISTRIBUTIONS if (s / "pyproject.toml").is_file()]
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == len(sources), (wheels, sdists)
    for wheel in wheels:
        meta = _metadata(wheel)
        where = wheel.name
        assert meta["Version"] and meta["Requires-Python"] == ">=3.11", where
        assert meta["License-Expression"] == "Apache-2.0", where
        assert meta.get_all("License-File") == ["LICENSE"], where
        assert meta.get_all("Project-URL"), where
        assert meta["Description-Content-Type"] == "text/markdown", where
        assert len(meta.get_payload()) > 200, f"{where}: no README as long description"
    for sdist in sdists:
        with tarfile.open(sdist) as archive:
            names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
        assert {"README.md", "LICENSE", "pyproject.toml"} <= names, sdist.name


def test_storage_extras_are_declared(dist: Path) -> None:
    ft = _metadata(next(dist.glob("tes_filetransfer-*.whl")))
    requires = ft.get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split(">")[0] for r in plain) == ["fsspec", "requests"], plain
    assert {"azure", "s3", "gcs", "all"} <= set(ft.get_all("Provides-Extra"))
    azure = _metadata(next(dist.glob("tes_azure-*.whl"))).get_all("Requires-Dist")
    assert any(r.startswith("tes-filetransfer[azure]") for r in azure), azure
    assert "all" in _metadata(next(dist.glob("tes_core-*.whl"))).get_all("Provides-Extra")


def test_clean_venv_with_only_the_core_wheels(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python, pip = venv / "bin" / "python", [venv / "bin" / "python", "-m", "pip", "install",
                                            "-q", "--find-links", dist]
    ft_wheel = next(dist.glob("tes_filetransfer-*.whl"))
    _run(*pip, ft_wheel, next(dist.glob("tes_runner-*.whl")), next(dist.glob("tes_core-*.whl")))
    probe = ("import importlib.util as u, sys\n"
             "def found(m):\n"
             "    try: return u.find_spec(m) is not None\n"
             "    except ImportError: return False\n"
             "print(' '.join(m for m in sys.argv[1:] if found(m)))")
    assert _run(python, "-c", probe, *CLOUD_MODULES).stdout.split() == []

    # The filetransfer command refuses an s3:// input before anything moves.
    task_file = tmp_path / "task.json"
    task_file.write_text('{"inputs": [{"url": "s3://bucket/in.txt", "path": "/data/in.txt"}]}')
    refused = subprocess.run([venv / "bin" / "tes-filetransfer", "download", "--task",
                              task_file, "--root", tmp_path / "root"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "inputs.0.url" in refused.stderr, refused.stderr
    assert f"pip install '{S3_EXTRA}'" in refused.stderr, refused.stderr

    data = tmp_path / "data"
    server = ChildServer("tes-server (clean venv)",
                         [str(venv / "bin" / "tes-server"), "serve", "--port", "0",
                          "--data-dir", str(data)], server_env(data), cwd=tmp_path)
    server.start(timeout=120)
    try:
        source = tmp_path / "in.txt"
        source.write_text("hello from a local input\n")
        task_id = create(server.url, {
            "inputs": [{"url": str(source), "path": "/data/in.txt"}],
            "outputs": [{"url": str(tmp_path / "out.txt"), "path": "/data/out.txt"}],
            "executors": [{"image": "busybox", "command": ["cp", "/data/in.txt",
                                                           "/data/out.txt"]}],
        })
        done = wait_for_state(server.url, task_id, TERMINAL, timeout=120)
        full = get_task(server.url, task_id, "FULL")
        assert done["state"] == "COMPLETE", (full["logs"][-1].get("system_logs"), server.log())
        assert (tmp_path / "out.txt").read_text() == "hello from a local input\n"

        s3_task = {"inputs": [{"url": "s3://bucket/in.txt", "path": "/data/in.txt"}],
                   "executors": [{"image": "busybox", "command": ["true"]}]}
        response = requests.post(f"{server.url}/tasks", json=s3_task, timeout=30)
        body = assert_error(response, 400, "inputs.0.url")
        assert S3_EXTRA in body["msg"], body

        _run(*pip, f"{ft_wheel}[s3]")  # the running server sees it without a restart
        accepted = requests.post(f"{server.url}/tasks", json=s3_task, timeout=30)
        assert accepted.status_code == 200, accepted.text
        requests.post(f"{server.url}/tasks/{accepted.json()['id']}:cancel", timeout=30)
    finally:
        server.stop()
