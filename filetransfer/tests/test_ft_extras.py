"""Storage extras: a URL whose storage's SDK is not installed is refused up front, naming
the field and the pip command; installed storages and the plain ones pass.

"Not installed" is made here by pointing a storage's extra at a module that does not
exist (``find_spec`` really looks for it); the clean-venv check of CI
(``scripts/check-packaging``) does the same with the SDKs truly absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tes_filetransfer import cli
from tes_filetransfer.storage import (
    AzureBlobStorage,
    GcsStorage,
    S3Storage,
    StorageNotInstalled,
    storage_for,
    unavailable_storages,
)
from tes_filetransfer.storage.extras import AZURE, EXTRAS, GCS, S3, Extra

ABSENT = "tes_filetransfer_test_absent_module"


@pytest.fixture
def s3_missing(monkeypatch: pytest.MonkeyPatch) -> Extra:
    extra = Extra("s3", "Amazon S3", (ABSENT,))
    monkeypatch.setattr(S3Storage, "needs", extra)
    return extra


def test_each_cloud_storage_names_its_extra() -> None:
    assert (AzureBlobStorage.needs, S3Storage.needs, GcsStorage.needs) == (AZURE, S3, GCS)
    assert [e.requirement for e in EXTRAS] == [
        "tes-filetransfer[azure]", "tes-filetransfer[s3]", "tes-filetransfer[gcs]"]
    assert S3.pip_command == "pip install 'tes-filetransfer[s3]'"


def test_installed_storages_are_accepted() -> None:
    # This environment has every extra (the suite installs tes-filetransfer[test]).
    task = {"inputs": [{"url": u, "path": "/x"} for u in (
        "s3://bucket/key", "gs://bucket/key", "az://container/blob",
        "https://acct.blob.core.windows.net/c/b", "/tmp/plain", "file:///tmp/f",
        "http://example.org/f", "ftp://example.org/f")]}
    assert unavailable_storages(task) == {}


def test_missing_extra_is_refused_with_the_pip_command(s3_missing: Extra) -> None:
    with pytest.raises(StorageNotInstalled) as caught:
        storage_for("s3://bucket/key?X-Amz-Signature=secret-token")
    message = str(caught.value)
    assert "pip install 'tes-filetransfer[s3]'" in message
    assert "s3://bucket/key" in message and "secret-token" not in message
    assert caught.value.extra is s3_missing


def test_fields_are_named_and_others_left_alone(s3_missing: Extra) -> None:
    task = {
        "inputs": [
            {"url": "/tmp/local", "path": "/a"},
            {"url": "s3://b/in", "path": "/b"},
            {"content": "inline", "url": "s3://ignored", "path": "/c"},  # content wins
            {"url": "unknown-scheme://x", "path": "/d"},  # no storage at all: staging says so
            "not an object", {"url": 42}, {"url": ""},
        ],
        "outputs": [{"url": "s3://b/out", "path": "/o"}, {"url": "gs://b/out", "path": "/p"}],
    }
    missing = unavailable_storages(task)
    assert sorted(missing) == ["inputs.1.url", "outputs.0.url"]
    assert unavailable_storages(task, ("outputs",)).keys() == {"outputs.0.url"}
    assert unavailable_storages({"inputs": "not a list"}) == {}


def test_an_extra_installed_later_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = Extra("json", "JSON store", ("json",))  # present: found and remembered
    assert extra.installed()
    broken = Extra("broken", "Broken store", ("json.no_such_submodule",))
    assert not broken.installed()


def _task_file(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"executors": [{"image": "x", "command": ["true"]}], **fields}))
    return path


def test_cli_refuses_before_anything_moves(
    tmp_path: Path, s3_missing: Extra, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "local.txt"
    local.write_text("local")
    root = tmp_path / "root"
    task = _task_file(tmp_path, inputs=[{"url": str(local), "path": "/data/local.txt"},
                                        {"url": "s3://bucket/in.txt", "path": "/data/in.txt"}])
    code = cli.main(["download", "--task", str(task), "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 1
    assert "inputs.1.url" in err and "pip install 'tes-filetransfer[s3]'" in err
    assert not (root / "data" / "local.txt").exists()  # the local input was not staged either


def test_cli_upload_checks_outputs_only(
    tmp_path: Path, s3_missing: Extra, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "out.txt").write_text("out")
    task = _task_file(tmp_path, inputs=[{"url": "s3://bucket/in.txt", "path": "/data/in.txt"}],
                      outputs=[{"url": "s3://bucket/out.txt", "path": "/data/out.txt"}])
    code = cli.main(["upload", "--task", str(task), "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 1 and "outputs.0.url" in err and "inputs.0.url" not in err


def test_azure_blob_https_urls_need_the_azure_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AzureBlobStorage, "needs", Extra("azure", "Azure Blob Storage",
                                                          (ABSENT,)))
    task = {"inputs": [{"url": "https://acct.blob.core.windows.net/c/b?sv=1&sig=x", "path": "/a"},
                       {"url": "https://example.org/plain.txt", "path": "/b"},
                       {"url": "az://container/blob", "path": "/c"}]}
    missing = unavailable_storages(task)
    assert sorted(missing) == ["inputs.0.url", "inputs.2.url"]
    assert "tes-filetransfer[azure]" in str(missing["inputs.0.url"])
    assert "sig=" not in str(missing["inputs.0.url"])
