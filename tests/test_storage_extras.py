"""Create refuses a URL whose storage is not installed on the server (a tes-filetransfer
extra), with a 400 naming the field and the pip command, and stores nothing.

"Not installed" is made by pointing S3's extra at a module that does not exist; the
clean-venv check of CI (``scripts/check-packaging``) runs the same request against a server
whose venv truly lacks s3fs, then installs the extra and sees the task accepted.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from tes_filetransfer.storage import S3Storage
from tes_filetransfer.storage.extras import Extra

from tes_core.app import create_app
from tes_core.config import Settings
from tests.api.support import API_SUFFIX, executor

PIP = "pip install 'tes-filetransfer[s3]'"


@pytest.fixture
def client(tmp_path):
    subprocess.run([sys.executable, "-m", "tes_core.cli", "db", "upgrade", "--data-dir",
                    str(tmp_path)], check=True, capture_output=True, timeout=120)
    settings = Settings.from_env({}, data_dir=tmp_path)
    app = create_app(settings, start_worker=False)
    return app.test_client()


def _task(**fields):
    return {"executors": [executor("true")], **fields}


def test_missing_storage_is_a_400_naming_field_and_pip(client, monkeypatch) -> None:
    monkeypatch.setattr(S3Storage, "needs", Extra("s3", "Amazon S3", ("tes_test_absent",)))
    document = _task(
        inputs=[{"path": "/data/a", "content": "inline"},
                {"path": "/data/b", "url": "s3://bucket/in?X-Amz-Signature=hidden"}],
        outputs=[{"path": "/data/o", "url": "s3://bucket/out"}],
    )
    response = client.post(f"{API_SUFFIX}/tasks", json=document)
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["msg"].startswith("invalid task: inputs.1.url: ")
    assert PIP in body["msg"] and "(and 1 more)" in body["msg"]
    assert set(body["errors"]) == {"inputs.1.url", "outputs.0.url"}
    assert all(PIP in reasons[0] for reasons in body["errors"].values())
    assert "hidden" not in response.get_data(as_text=True)  # the signed query is redacted
    listed = client.get(f"{API_SUFFIX}/tasks")
    assert listed.status_code == 200 and listed.get_json().get("tasks", []) == []  # none stored


def test_installed_storage_is_accepted(client) -> None:
    document = _task(inputs=[{"path": "/data/b", "url": "s3://bucket/in"}])
    response = client.post(f"{API_SUFFIX}/tasks", json=document)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"]
