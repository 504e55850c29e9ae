"""URL rewriting: every URL form Cromwell writes, against storage built from settings.

SAS tokens are signed locally with the account key, so no storage service is needed
here; ``test_e2e_azurite.py`` has Azurite check them for real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tes_core.errors import ApiError, SubmitterError

KEY = "a2V5LWZvci10ZXN0cw=="
AZURITE = "UseDevelopmentStorage=true"
AZURITE_URL = "http://127.0.0.1:10000/devstoreaccount1"
TERRA = "lz9f2c4a7b1e3d5c6a8b0e2f4"
COA = "coastoragedemo"
W1 = "1f0e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"


def account(name: str) -> str:
    return f"DefaultEndpointsProtocol=https;AccountName={name};AccountKey={KEY}"


def rewrite_one(hook: Any, *, url: str, direction: str, **arguments: Any) -> str | None:
    """One URL through the plugin's rewriter for the task (``None``: it has none)."""
    rewriters = hook.tes_url_rewriter(**arguments)  # pluggy: the results that are not None
    return rewriters[0](url, direction) if rewriters else None


def rewrite_all(
    hook: Any, task: dict[str, Any], settings: Any, storage: Any, backend: Any
) -> dict[str, Any]:
    """What the task service does with the hooks: detect, then rewrite every URL."""
    submitter = hook.tes_detect_submitter(task=task, settings=settings)
    assert submitter is not None
    [rewrite] = hook.tes_url_rewriter(task=task, submitter=submitter, backend=backend,
                                      settings=settings, storage=storage)
    for direction, key in (("input", "inputs"), ("output", "outputs")):
        for item in task.get(key) or ():
            if item.get("url"):
                new = rewrite(item["url"], direction)
                if new is not None:
                    item["url"] = new
    return task


def sas(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def by_name(items: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item["url"] for item in items}


def test_local_roots_become_blobs_in_the_cromwell_container(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = rewrite_all(hook, document("v71-local-root-granular"), make_settings(),
                       make_storage(AZURITE), backend("local"))

    folder = f"{AZURITE_URL}/cromwell/tsvflow/{W1}/call-count/execution"
    script = by_name(task["inputs"])["commandScript"]
    assert script.startswith(f"{folder}/script?")
    assert sas(script)["sp"] == "r" and sas(script)["sr"] == "b"
    for name in ("rc", "stdout", "stderr"):
        url = by_name(task["outputs"])[name]
        assert url.startswith(f"{folder}/{name}?")
        assert set(sas(url)["sp"]) == set("racw"), "outputs get create/write/append"
    assert all(item["path"].startswith("/cromwell-executions/") for item in task["inputs"])


def test_the_shared_global_root_is_a_local_root_too(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = rewrite_all(hook, document("v87-subworkflow-scatter-attempt"), make_settings(),
                       make_storage(AZURITE), backend("batch"))

    script = by_name(task["inputs"])["commandScript"]
    assert script.startswith(f"{AZURITE_URL}/cromwell/cromwell-executions/main/")
    glob = by_name(task["outputs"])["globDir.0"]
    base, query = glob.split("?")
    assert base.endswith("/execution/glob-0a1b2c3d4e5f60718293a4b5c6d7e8f9"), "no trailing /"
    assert sas(glob)["sr"] == "c", "a folder gets a container SAS"
    assert set(sas(glob)["sp"]) == set("racwl")


def test_root_output_mode_uploads_the_call_folder_with_a_container_sas(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = rewrite_all(hook, document("v85-root-output-mode"), make_settings(),
                       make_storage(AZURITE), backend("local"))

    [output] = task["outputs"]
    assert output["url"].split("?")[0].endswith("/call-work/execution")
    assert sas(output["url"])["sr"] == "c"


def test_one_container_per_workflow(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    settings = make_settings(TES_CROMWELL_CONTAINER="cw-{root_workflow_id}")
    task = rewrite_all(hook, document("v87-subworkflow-scatter-attempt"), settings,
                       make_storage(AZURITE), backend("local"))

    root = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
    assert by_name(task["inputs"])["commandScript"].startswith(f"{AZURITE_URL}/cw-{root}/")


def test_local_prefixes_are_configurable(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    settings = make_settings(
        TES_CROMWELL_LOCAL_PREFIXES="/tes-wd/shared/", TES_CROMWELL_CONTAINER="executions"
    )
    task = rewrite_all(hook, document("cromwell-3"), settings, make_storage(AZURITE),
                       backend("local"))

    urls = by_name(task["inputs"])
    assert urls["align.bwa_mem.ref.0"].startswith(f"{AZURITE_URL}/executions/inputs/hg38.fa?")
    assert urls["commandScript"].startswith(f"{AZURITE_URL}/executions/main/5c0ffee0-")


def test_account_paths_of_the_servers_account(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = rewrite_all(hook, document("v81-coa-account-paths"), make_settings(),
                       make_storage(account(COA)), backend("batch"))

    base = f"https://{COA}.blob.core.windows.net"
    urls = by_name(task["inputs"])
    assert urls["coa.align.reads.0"].startswith(f"{base}/inputs/reads/s1.fq.gz?")
    assert urls["commandScript"].startswith(f"{base}/cromwell-executions/coa/")
    assert set(sas(by_name(task["outputs"])["coa.align.output.0"])["sp"]) == set("racw")


def test_blob_urls_of_the_servers_account_get_a_sas(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    original = document("cromwell-2")
    task = rewrite_all(hook, document("cromwell-2"), make_settings(),
                       make_storage(account(TERRA)), backend("batch"))

    for before, after in zip(original["outputs"], task["outputs"], strict=True):
        assert after["url"].startswith(before["url"].rstrip("/") + "?")
    assert sas(by_name(task["outputs"])["globDir.1"])["sr"] == "c"
    assert sas(by_name(task["inputs"])["commandScript"])["sp"] == "r"


def test_a_sas_connection_string_signs_with_its_own_sas(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    storage = make_storage(
        f"BlobEndpoint=https://{TERRA}.blob.core.windows.net;SharedAccessSignature=sv=2022&sig=x"
    )
    task = rewrite_all(hook, document("cromwell-2"), make_settings(), storage, backend("batch"))
    assert by_name(task["outputs"])["rc"].endswith("/execution/rc?sv=2022&sig=x")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://ftp.example.org/data/x.bam",
        "gs://bucket/x.bam",
        "s3://bucket/x.bam",
        "drs://drs.example.org/abc",
        "https://example.org/x.bam",
        f"https://{TERRA}.blob.core.windows.net/c/x.bam?sv=2022&sig=abc",
        "https://datasettestinputs.blob.core.windows.net/dataset/public.bam",
    ],
)
def test_inputs_elsewhere_are_left_alone(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, url: str,
) -> None:
    task = document("cromwell-2")
    task["inputs"][0]["url"] = url
    task = rewrite_all(hook, task, make_settings(), make_storage(account(TERRA)), backend("batch"))
    assert task["inputs"][0]["url"] == url


def test_the_ftp_root_is_left_alone(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    original = document("v86-ftp-root")
    task = rewrite_all(hook, document("v86-ftp-root"), make_settings(), make_storage(AZURITE),
                       backend("local"))
    assert task == original


def test_without_storage_the_local_backend_reads_local_paths(
    hook: Any, document: Callable, make_settings: Callable, backend: Callable,
) -> None:
    original = document("cromwell-1")
    task = rewrite_all(hook, document("cromwell-1"), make_settings(), None, backend("local"))
    assert task == original


def test_with_storage_other_local_paths_stay_local_on_the_local_backend(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = rewrite_all(hook, document("cromwell-1"), make_settings(), make_storage(AZURITE),
                       backend("local"))
    urls = by_name(task["inputs"])
    assert urls["test.hello.input_bam.0"] == "/coa7f3e2bstorage/inputs/sample1.bam"
    assert urls["commandScript"].startswith(f"{AZURITE_URL}/cromwell/test/")


@pytest.mark.parametrize(
    ("name", "storage", "says"),
    [
        ("cromwell-1", None, "TES_STORAGE_CONNECTION_STRING or TES_STORAGE_ACCOUNT_URL"),
        ("cromwell-1", AZURITE,
         "is in storage account 'coa7f3e2bstorage', which this server cannot sign for"),
        ("cromwell-2", None, "no storage to sign uploads"),
        ("cromwell-2", account("otheraccount"),
         "it signs for 'otheraccount' (TES_STORAGE_CONNECTION_STRING)): add its connection "
         "string as TES_STORAGE_CONNECTION_STRING_<NAME>"),
        ("cromwell-2", f"{account(TERRA)};BlobEndpoint=http://127.0.0.1:10000/{TERRA}",
         f"in storage account '{TERRA}' at https://{TERRA}.blob.core.windows.net, but this "
         f"server's account '{TERRA}' is at http://127.0.0.1:10000/{TERRA} "
         "(TES_STORAGE_CONNECTION_STRING)"),
    ],
)
def test_a_rewrite_that_cannot_be_done_is_a_submitter_error(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, name: str, storage: str | None, says: str,
) -> None:
    with pytest.raises(SubmitterError) as caught:
        rewrite_all(hook, document(name), make_settings(),
                    make_storage(storage) if storage else None, backend("batch"))
    assert says in caught.value.message
    assert "sig=" not in caught.value.message


def test_other_engines_urls_are_not_touched(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    task = document("nextflow-2")
    assert rewrite_one(
        hook, url=task["inputs"][0]["url"], direction="input", task=task, submitter=None,
        backend=backend("local"), settings=make_settings(), storage=make_storage(AZURITE),
    ) is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TES_CROMWELL_CONTAINER", "Not_A_Container"),
        ("TES_CROMWELL_CONTAINER", "cw-{unknown}"),
        ("TES_CROMWELL_LOCAL_PREFIXES", "relative/root"),
        ("TES_CROMWELL_SAS_LIFETIME_HOURS", "forever"),
        ("TES_CROMWELL_LIST_EXECUTION_FOLDER", "maybe"),
    ],
)
def test_bad_settings_name_the_variable(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, variable: str, value: str,
) -> None:
    with pytest.raises(ApiError, match=variable) as caught:
        rewrite_all(hook, document("cromwell-1"), make_settings(**{variable: value}),
                    make_storage(AZURITE), backend("local"))
    assert caught.value.status_code == 500


def test_the_sas_lifetime_is_configurable(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    from datetime import datetime

    task = rewrite_all(hook, document("cromwell-1"),
                       make_settings(TES_CROMWELL_SAS_LIFETIME_HOURS="2"),
                       make_storage(AZURITE), backend("local"))
    query = sas(by_name(task["outputs"])["rc"])
    start, expiry = (datetime.strptime(query[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("st", "se"))
    assert 7000 <= (expiry - start).total_seconds() <= 7500, "2 h, plus 5 min of clock skew"


def test_each_url_is_signed_by_the_account_it_names(
    hook: Any, document: Callable, make_settings: Callable, backend: Callable,
) -> None:
    from tes_azure.accounts import StorageAccounts

    settings = make_settings(TES_STORAGE_CONNECTION_STRING=AZURITE,
                             TES_STORAGE_CONNECTION_STRING_COA=account(COA))
    storage = StorageAccounts.from_settings(settings)
    task = rewrite_all(hook, document("v81-coa-account-paths"), settings, storage,
                       backend("batch"))
    hosts = {urlsplit(item["url"]).netloc for item in task["inputs"] + task["outputs"]}
    assert hosts == {f"{COA}.blob.core.windows.net"}, "every path names the COA account"
    cromwell_1 = rewrite_all(hook, document("cromwell-1"), settings, storage, backend("local"))
    urls = by_name(cromwell_1["inputs"])
    assert urls["commandScript"].startswith(f"{AZURITE_URL}/cromwell/"), "local root: default"
