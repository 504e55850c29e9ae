"""URL rewriting of every Nextflow form, with real SAS signing (no network needed)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tes_azure.blobstorage import BlobStorage
from tes_core.config import Settings
from tes_core.errors import ApiError, SubmitterError
from tes_core.submitter import Submitter

from tes_nextflow.plugin import tes_detect_submitter, tes_url_rewriter

Loader = Callable[[str], dict[str, Any]]
KEY = base64.b64encode(b"not a real key, but signs like one").decode()
ENDPOINT = "https://nfteststorage.blob.core.windows.net"


def storage_for(account: str = "nfteststorage") -> BlobStorage:
    """Storage with an account key: SAS tokens are signed locally."""
    return BlobStorage.from_connection_string(
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={KEY};"
        "EndpointSuffix=core.windows.net"
    )


def rewrite_one(
    *, url: str, direction: str, task: dict[str, Any], submitter: Submitter | None,
    settings: Settings, storage: BlobStorage | None,
) -> str | None:
    """One URL through the plugin's rewriter for ``task`` (``None``: it has none)."""
    rewrite = tes_url_rewriter(task=task, submitter=submitter, settings=settings,
                               storage=storage)
    return rewrite(url, direction) if rewrite is not None else None


def rewrite_all(
    task: dict[str, Any], storage: BlobStorage | None, settings: Settings | None = None
) -> dict[str, list[str | None]]:
    """Every input and output URL through the task's rewriter (without writing them back)."""
    submitter = tes_detect_submitter(task=task)
    assert submitter is not None
    rewrite = tes_url_rewriter(task=task, submitter=submitter, settings=settings or Settings(),
                               storage=storage)
    assert rewrite is not None
    found: dict[str, list[str | None]] = {"inputs": [], "outputs": []}
    for key, direction in (("inputs", "input"), ("outputs", "output")):
        for item in task.get(key) or ():
            if item.get("url"):
                found[key].append(rewrite(item["url"], direction))
    return found


def sas(url: str | None) -> tuple[str, dict[str, str]]:
    """The URL without its query, and the SAS fields."""
    assert url is not None
    parts = urlsplit(url)
    fields = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return url.split("?", 1)[0], fields


def test_plugin_1_4_2_account_urls(document: Loader) -> None:
    task = document("nextflow-2")
    found = rewrite_all(task, storage_for())
    work = f"{ENDPOINT}/work/nf-runs/9c/41d2e8f0a6b3c5d7e9f1a2b4c6d8e0"

    url, fields = sas(found["inputs"][0])
    assert url == f"{work}/.command.sh"
    assert (fields["sr"], fields["sp"]) == ("b", "r")
    url, fields = sas(found["inputs"][3])
    assert url == f"{ENDPOINT}/data/reads/GM12878_REP2_1.fq.gz"
    # A DIRECTORY input: a container SAS that can list, on the folder's URL.
    url, fields = sas(found["inputs"][4])
    assert url == f"{ENDPOINT}/work/nf-runs/2b/8e0c4a6f1d3b5e7a9c1e3f5b7d9a1c/salmon_index"
    assert (fields["sr"], fields["sp"]) == ("c", "rl")

    url, fields = sas(found["outputs"][3])
    assert url == f"{work}/.exitcode"
    assert (fields["sr"], fields["sp"]) == ("b", "rcwa")
    url, fields = sas(found["outputs"][4])
    assert url == f"{work}/GM12878_REP2"
    assert (fields["sr"], fields["sp"]) == ("c", "rcwal")


def test_plugin_1_4_1_account_paths(document: Loader) -> None:
    task = document("plugin-1.4.1-azure-paths")
    found = rewrite_all(task, storage_for())
    work = f"{ENDPOINT}/work/nf-runs/3f/9a1b2c3d4e5f60718293a4b5c6d7e8"
    assert [sas(u)[0] for u in found["inputs"]] == [
        f"{work}/.command.sh", f"{work}/.command.run",
        f"{ENDPOINT}/data/reads/sample_1.fq.gz",
        f"{ENDPOINT}/work/nf-runs/tmp/1a/2b3c4d5e6f708192a3b4c5d6e7f809/bin/helper.sh",
    ]
    # The wildcard output: uploaded below the work folder, so a container SAS.
    url, fields = sas(found["outputs"][4])
    assert url == work
    assert (fields["sr"], fields["sp"]) == ("c", "rcwal")


def test_account_paths_of_another_account_are_local_files(document: Loader) -> None:
    found = rewrite_all(document("plugin-1.4.1-azure-paths"), storage_for("otheraccount"))
    assert found == {"inputs": [None] * 4, "outputs": [None] * 6}


def test_builtin_container_urls(document: Loader) -> None:
    found = rewrite_all(document("builtin-24.02-azure"), storage_for())
    work = f"{ENDPOINT}/nf-work/runs/7d/0e1f2a3b4c5d6e7f8091a2b3c4d5e6"
    assert sas(found["inputs"][1])[0] == f"{work}/.command.run"
    assert sas(found["inputs"][3])[0] == f"{ENDPOINT}/inputs/genomes/hg38.fa"
    assert sas(found["outputs"][4])[0] == f"{work}/counts.tsv"


@pytest.mark.parametrize("name", ["nextflow-1", "plugin-s3", "builtin-22-file-urls"])
def test_other_schemes_and_local_paths_are_left(name: str, document: Loader) -> None:
    found = rewrite_all(document(name), storage_for())
    assert all(url is None for urls in found.values() for url in urls)
    # Without storage too: nothing in these documents needs it.
    found = rewrite_all(document(name), None)
    assert all(url is None for urls in found.values() for url in urls)


@pytest.mark.parametrize("name", ["nextflow-2", "builtin-24.02-azure"])
def test_azure_urls_without_storage_are_refused(name: str, document: Loader) -> None:
    with pytest.raises(SubmitterError) as caught:
        rewrite_all(document(name), None)
    assert "TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL" in caught.value.message
    assert caught.value.status_code == 400


def test_unknown_account_is_refused(document: Loader) -> None:
    with pytest.raises(SubmitterError) as caught:
        rewrite_all(document("nextflow-2"), storage_for("otheraccount"))
    message = caught.value.message
    assert "'nfteststorage'" in message and "'otheraccount'" in message
    assert "azure.storage.accountName" in message


def test_az_url_without_container_is_refused(document: Loader) -> None:
    task = document("nextflow-2")
    task["inputs"][3]["url"] = "az://nfteststorage"
    with pytest.raises(SubmitterError, match="names no container"):
        rewrite_all(task, storage_for())


def test_sas_lifetime_setting(document: Loader) -> None:
    settings = Settings(plugin_settings={"nextflow_sas_lifetime_hours": "2"})
    found = rewrite_all(document("nextflow-2"), storage_for(), settings)
    expiry = datetime.fromisoformat(sas(found["inputs"][0])[1]["se"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=50) < expiry - datetime.now(UTC) <= timedelta(hours=2)

    default = rewrite_all(document("nextflow-2"), storage_for())
    expiry = datetime.fromisoformat(sas(default["inputs"][0])[1]["se"].replace("Z", "+00:00"))
    assert timedelta(hours=47) < expiry - datetime.now(UTC) <= timedelta(hours=48)

    for bad in ("soon", "0", "-1", "169"):
        settings = Settings(plugin_settings={"nextflow_sas_lifetime_hours": bad})
        with pytest.raises(ApiError, match="TES_NEXTFLOW_SAS_LIFETIME_HOURS"):
            rewrite_all(document("nextflow-2"), storage_for(), settings)


def test_other_submitters_urls_are_not_touched(document: Loader) -> None:
    task = document("nextflow-2")
    for submitter in (None, Submitter(name="cromwell")):
        assert rewrite_one(
            url=task["inputs"][0]["url"], direction="input", task=task, submitter=submitter,
            settings=Settings(), storage=storage_for(),
        ) is None


def test_a_plain_nextflow_submitter_works_too(document: Loader) -> None:
    """The launch form is found again when the submitter is not the plugin's own object."""
    task = document("builtin-24.02-azure")
    url = rewrite_one(
        url=task["inputs"][3]["url"], direction="input", task=task,
        submitter=Submitter(name="nextflow"), settings=Settings(), storage=storage_for(),
    )
    assert sas(url)[0] == f"{ENDPOINT}/inputs/genomes/hg38.fa"
