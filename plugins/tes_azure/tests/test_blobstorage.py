"""The server's blob storage: settings, URL forms, and SAS tokens checked by Azurite."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from tes_core.config import ConfigError, Settings
from tests.azurite import DelegatingService, azurite_connection_string, new_container

from tes_azure.blobstorage import BlobStorage, TaskSigners

HOUR = timedelta(hours=1)
BLOCK = {"x-ms-blob-type": "BlockBlob"}


@pytest.fixture(scope="module")
def storage() -> BlobStorage:
    return BlobStorage.from_connection_string(azurite_connection_string())


@pytest.fixture(scope="module")
def container(storage: BlobStorage) -> str:
    return new_container(azurite_connection_string(), "blobstorage")


# -- configuration ----------------------------------------------------------------


def test_no_storage_setting_means_no_storage() -> None:
    assert BlobStorage.from_settings(Settings.from_env({})) is None


def test_an_account_key_connection_string() -> None:
    storage = BlobStorage.from_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
        "EndpointSuffix=core.windows.net"
    )
    assert storage.account_name == "acct"
    assert storage.account_url == "https://acct.blob.core.windows.net"
    assert storage.blob_url("c", "a b/c#d.txt") == (
        "https://acct.blob.core.windows.net/c/a%20b/c%23d.txt"
    )
    assert "a2V5" not in repr(storage)


def test_a_sas_connection_string_appends_its_sas() -> None:
    storage = BlobStorage.from_connection_string(
        "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=abc"
    )
    assert storage.account_name == "acct"
    assert storage.sas_url("c", "x", write=True, lifetime=HOUR) == (
        "https://acct.blob.core.windows.net/c/x?sv=2022&sig=abc"
    )


def test_development_storage() -> None:
    storage = BlobStorage.from_settings(
        Settings.from_env({"TES_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    )
    assert storage is not None
    assert storage.account_name == "devstoreaccount1"
    assert storage.account_url == "http://127.0.0.1:10000/devstoreaccount1"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not a connection string", "key=value"),
        ("AccountKey=a2V5", "AccountName or BlobEndpoint"),
        ("AccountName=acct", "AccountKey or SharedAccessSignature"),
    ],
)
def test_bad_connection_strings_name_the_variable(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match="TES_STORAGE_CONNECTION_STRING") as caught:
        BlobStorage.from_settings(Settings.from_env({"TES_STORAGE_CONNECTION_STRING": value}))
    assert says in str(caught.value)


def test_an_account_url() -> None:
    storage = BlobStorage.from_settings(
        Settings.from_env({"TES_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net/"})
    )
    assert storage is not None
    assert (storage.account_name, storage.account_url) == (
        "acct", "https://acct.blob.core.windows.net"
    )
    with pytest.raises(ConfigError, match="TES_STORAGE_ACCOUNT_URL"):
        BlobStorage.from_account_url("acct.blob.core.windows.net")


def test_urls_on_the_account_are_recognised() -> None:
    storage = BlobStorage.from_connection_string("UseDevelopmentStorage=true")
    base = "http://127.0.0.1:10000/devstoreaccount1"
    assert storage.parse_url(f"{base}/c/dir/a%20b.txt?sv=1&sig=2") == ("c", "dir/a b.txt")
    assert storage.parse_url(f"{base}/c") == ("c", "")
    assert storage.parse_url(f"{base}/") is None
    assert storage.parse_url("http://127.0.0.1:10000/otheraccount/c/x") is None
    assert storage.parse_url("https://devstoreaccount1.blob.core.windows.net/c/x") is None
    assert storage.parse_account_path("/devstoreaccount1/c/dir/x") == ("c", "dir/x")
    assert storage.parse_account_path("/other/c/dir/x") is None
    assert storage.parse_account_path("/devstoreaccount1/c") is None


# -- real SAS tokens, checked by Azurite ------------------------------------------


def test_a_write_sas_uploads_and_a_read_sas_reads(storage: BlobStorage, container: str) -> None:
    put = requests.put(
        storage.sas_url(container, "dir/hello world.txt", write=True, lifetime=HOUR),
        data=b"hello", headers=BLOCK, timeout=10,
    )
    assert put.status_code == 201, put.text
    got = requests.get(
        storage.sas_url(container, "dir/hello world.txt", write=False, lifetime=HOUR), timeout=10
    )
    assert (got.status_code, got.content) == (200, b"hello")


def test_a_read_sas_cannot_write(storage: BlobStorage, container: str) -> None:
    put = requests.put(
        storage.sas_url(container, "readonly.txt", write=False, lifetime=HOUR),
        data=b"x", headers=BLOCK, timeout=10,
    )
    assert put.status_code == 403


def test_a_tampered_or_expired_sas_is_refused(storage: BlobStorage, container: str) -> None:
    url = storage.sas_url(container, "t.txt", write=True, lifetime=HOUR)
    tampered = url.replace("sp=racw", "sp=racwd") if "sp=racw" in url else url + "x"
    assert requests.put(tampered, data=b"x", headers=BLOCK, timeout=10).status_code == 403
    expired = storage.sas_url(container, "t.txt", write=True, lifetime=-timedelta(minutes=1))
    assert requests.put(expired, data=b"x", headers=BLOCK, timeout=10).status_code == 403


def test_a_sas_starts_in_the_past_for_clock_skew(storage: BlobStorage) -> None:
    query = parse_qs(urlsplit(storage.sas_url("c", "b", write=False, lifetime=HOUR)).query)
    start = datetime.strptime(query["st"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    expiry = datetime.strptime(query["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert start < datetime.now(UTC) - timedelta(minutes=4)
    assert timedelta(minutes=64) <= expiry - start <= timedelta(minutes=66)


def test_list_blobs_by_prefix(storage: BlobStorage, container: str) -> None:
    for name in ("run/a/x.txt", "run/a/y.txt", "run/b/z.txt"):
        url = storage.sas_url(container, name, write=True, lifetime=HOUR)
        assert requests.put(url, data=b".", headers=BLOCK, timeout=10).status_code == 201
    assert sorted(storage.list_blobs(container, "run/a/")) == ["run/a/x.txt", "run/a/y.txt"]
    assert storage.list_blobs(container, "run/none/") == []
    assert storage.list_blobs("no-such-container", "") == []


def test_a_container_sas_lists_and_writes(storage: BlobStorage, container: str) -> None:
    read = storage.container_sas_url(container, write=False, lifetime=HOUR)
    listed = requests.get(f"{read}&restype=container&comp=list", timeout=10)
    assert listed.status_code == 200, listed.text
    write = storage.container_sas_url(container, write=True, lifetime=HOUR)
    base, query = write.split("?", 1)
    put = requests.put(f"{base}/via-container.txt?{query}", data=b"x", headers=BLOCK, timeout=10)
    assert put.status_code == 201, put.text
    put = requests.put(f"{read.split('?')[0]}/no.txt?{read.split('?')[1]}", data=b"x",
                       headers=BLOCK, timeout=10)
    assert put.status_code == 403


# -- user-delegation SAS (Azure AD) -----------------------------------------------


@pytest.mark.parametrize("write", [False, True])
def test_sas_urls_are_the_sas_urls_of_each_blob(
    monkeypatch: pytest.MonkeyPatch, write: bool
) -> None:
    """``sas_urls`` (one task's files) answers what ``sas_url`` answers for each, with an
    account key, a SAS connection string, or Azure AD."""
    monkeypatch.setattr("tes_azure.blobstorage.time.time", lambda: 1_800_000_000.5)
    key = base64.b64encode(b"a key for the test").decode()
    delegated = BlobStorage.from_account_url("https://acct.blob.core.windows.net")
    delegated._client = DelegatingService()  # type: ignore[assignment]
    for storage in (
        BlobStorage.from_connection_string(f"AccountName=acct;AccountKey={key}"),
        BlobStorage.from_connection_string("AccountName=acct;SharedAccessSignature=sv=x&sig=y"),
        delegated,
    ):
        url, signers = storage.sas_urls(write=write, lifetime=HOUR), TaskSigners()
        for container, blob in (("c", "a.txt"), ("c", "dir/hello world.txt"), ("d", "x/ü#?")):
            expected = storage.sas_url(container, blob, write=write, lifetime=HOUR)
            assert url(container, blob) == expected
            assert signers.sas_url(storage, container, blob, write=write,
                                   lifetime=HOUR) == expected


def test_task_signers_use_sas_url_when_an_account_has_no_sas_urls() -> None:
    class Plain:
        def sas_url(self, container: str, blob: str, *, write: bool, lifetime: timedelta) -> str:
            return f"{container}/{blob}?{write}&{lifetime}"

    signers = TaskSigners()
    assert signers.sas_url(Plain(), "c", "b", write=True, lifetime=HOUR) == "c/b?True&1:00:00"


def test_user_delegation_keys_are_cached_and_renewed() -> None:
    storage = BlobStorage.from_account_url("https://acct.blob.core.windows.net")
    service = DelegatingService()
    storage._client = service  # type: ignore[assignment]

    first = storage.sas_url("c", "a", write=False, lifetime=HOUR)
    storage.sas_url("c", "b", write=True, lifetime=HOUR)
    assert len(service.calls) == 1, "the key is reused while it outlives the SAS"
    query = parse_qs(urlsplit(first).query)
    assert query["skoid"] == ["00000000-0000-0000-0000-00000000000a"]
    assert query["sp"] == ["r"]

    storage.sas_url("c", "a", write=False, lifetime=timedelta(days=2))
    assert len(service.calls) == 2, "a SAS outliving the cached key gets a new key"
    start, expiry = service.calls[-1]
    assert expiry - start > timedelta(days=2)


def test_a_folder_sas_covers_the_files_under_it(storage: BlobStorage, container: str) -> None:
    folder = storage.folder_sas_url(container, "outdir", write=True, lifetime=HOUR)
    base, query = folder.split("?", 1)
    assert base.endswith(f"/{container}/outdir")
    for name in ("a.txt", "sub/b.txt"):
        put = requests.put(f"{base}/{name}?{query}", data=b"x", headers=BLOCK, timeout=10)
        assert put.status_code == 201, put.text
    assert sorted(storage.list_blobs(container, "outdir/")) == ["outdir/a.txt", "outdir/sub/b.txt"]


@pytest.mark.parametrize(
    ("value", "hours"), [(None, 48.0), ("1.5", 1.5), ("168", 168.0)]
)
def test_sas_lifetime_setting(value: str | None, hours: float) -> None:
    from tes_core.blobstore import sas_lifetime

    env = {} if value is None else {"TES_DEMO_SAS_LIFETIME_HOURS": value}
    lifetime = sas_lifetime(Settings.from_env(env), "demo_sas_lifetime_hours", 48)
    assert lifetime == timedelta(hours=hours)


@pytest.mark.parametrize("value", ["0", "-1", "169", "two days"])
def test_bad_sas_lifetimes_name_the_variable(value: str) -> None:
    from tes_core.blobstore import sas_lifetime

    settings = Settings.from_env({"TES_DEMO_SAS_LIFETIME_HOURS": value})
    with pytest.raises(ConfigError, match="TES_DEMO_SAS_LIFETIME_HOURS"):
        sas_lifetime(settings, "demo_sas_lifetime_hours", 48)
