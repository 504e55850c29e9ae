"""The account's quotas, read from Resource Manager (a loopback fake of ARM over HTTPS,
with the real azure-mgmt-batch client and ``DefaultAzureCredential`` on the fake's
managed identity): a node the account can never get is refused at submit, naming the
size, cores, quota and what to do; without the resource id, the task waits as before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tes_core.backends.base import BackendError
from tes_core.config import ConfigError, Settings

from tes_batch.quota import AccountQuotas, parse_resource_id, vm_family
from tes_batch.settings import BatchSettings, VmSize
from tes_batch.sizing import Choice

from .fake_arm import FakeArm
from .test_batch_backend import backend, prefix_of, record

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeArm]:
    fake = FakeArm(tmp_path_factory.mktemp("arm-quota"))
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def fake(batch, request: pytest.FixtureRequest) -> Iterator[object]:
    """The fake Batch; what the test made is deleted afterwards."""
    yield batch
    batch.drop(prefix_of(request.node.name))


@pytest.fixture
def azure_env(arm: FakeArm, monkeypatch: pytest.MonkeyPatch) -> FakeArm:
    """``DefaultAzureCredential`` gets its token from the fake, whose certificate is
    trusted."""
    for name, value in {**arm.identity_env(), "REQUESTS_CA_BUNDLE": str(arm.cert_file)}.items():
        monkeypatch.setenv(name, value)
    return arm


def task(**resources: object):
    return record(
        "q-" + "-".join(f"{k}{v}" for k, v in resources.items()),
        {"executors": [{"image": "busybox", "command": ["true"]}], "resources": resources},
    )


def test_beyond_the_quota_fails_at_submit_saying_why(fake, tmp_path, azure_env):
    resource_id = azure_env.add_batch_account(
        SUB,
        "rg-quota",
        "quotaacct",
        dedicatedCoreQuota=12,
        lowPriorityCoreQuota=4,
        dedicatedCoreQuotaPerVMFamily=[
            {"name": "standardDSv3Family", "coreQuota": 12},
            {"name": "standardESv3Family", "coreQuota": 2},
        ],
    )
    made = backend(
        fake, tmp_path, TES_BATCH_ACCOUNT_RESOURCE_ID=resource_id, TES_BATCH_ARM_URL=azure_env.url
    )
    before = len(azure_env.requests)
    # 16 dedicated cores: beyond the account's 12.
    with pytest.raises(BackendError) as refused:
        made.submit(task(cpu_cores=16))
    message = str(refused.value)
    for part in (
        "Standard_D16s_v3",
        "16 cores",
        "dedicatedCoreQuota",
        "is 12",
        "quota increase",
        "smaller",
    ):
        assert part in message, message
    # The E family is enforced at 2 cores: an E4s_v3 (4 cores) can never run.
    with pytest.raises(BackendError, match=r"standardesv3family.*is 2"):
        made.submit(task(cpu_cores=4, ram_gb=20))
    # Low-priority: 4 cores allowed, 8 asked.
    with pytest.raises(BackendError, match=r"lowPriorityCoreQuota\) is 4"):
        made.submit(task(cpu_cores=8, preemptible=True))
    assert not fake.recorded("POST"), "nothing was sent to Batch for refused tasks"
    # Within every quota: submitted.
    ref = made.submit(task(cpu_cores=4, preemptible=True))
    assert ref.endswith("/q-cpu_cores4-preemptibleTrue-1")
    assert len(fake.recorded("POST", "/jobs/")) == 1
    # One read of the account, kept (TES_BATCH_QUOTA_TTL), for all five submits.
    gets = [r for r in azure_env.requests[before:] if r == ("GET", resource_id)]
    assert len(gets) == 1, azure_env.requests[before:]


def test_without_the_resource_id_or_arm_the_task_waits_as_before(
    fake,
    tmp_path,
    azure_env,
):
    fake.paused = True
    made = backend(fake, tmp_path)
    assert made.quotas is None
    assert not made.submit(task(cpu_cores=16)).startswith("wait:")
    # Resource Manager refusing (an account it does not know): nothing is checked.
    missing = (
        f"/subscriptions/{SUB}/resourceGroups/rg-quota/providers/Microsoft.Batch/"
        "batchAccounts/nosuchacct"
    )
    lenient = backend(
        fake, tmp_path, TES_BATCH_ACCOUNT_RESOURCE_ID=missing, TES_BATCH_ARM_URL=azure_env.url
    )
    assert lenient.quotas.get() is None
    assert lenient.submit(task(cpu_cores=16, ram_gb=1))


def test_quota_rules_and_families():
    size = VmSize("Standard_NC24ads_A100_v4", 24, 220, 64, 3.6, 0.7, gpus=1)
    assert vm_family(size.name) == "standardNCADSA100v4Family"
    assert vm_family("Standard_D4s_v3") == "standardDSv3Family"
    quotas = AccountQuotas(
        dedicated_cores=100,
        low_priority_cores=None,
        per_family_enforced=True,
        families={"standardncadsa100v4family": 0},
    )
    assert "is 0" in quotas.never_fits(Choice(size, False), "a")
    assert quotas.never_fits(Choice(size, True), "a") is None  # not stated: not checked
    named = VmSize("Standard_X1", 24, 1, 1, 1, 1, family="standardNCADSA100v4Family")
    assert quotas.never_fits(Choice(named, False), "a")
    relaxed = AccountQuotas(
        dedicated_cores=100, per_family_enforced=False, families={"standardncadsa100v4family": 0}
    )
    assert relaxed.never_fits(Choice(size, False), "a") is None
    assert "pool quota of 0" in AccountQuotas(pools=0).never_fits(Choice(size, False), "a")


def test_the_resource_id_setting_is_checked():
    good = f"/subscriptions/{SUB}/resourceGroups/rg.1/providers/Microsoft.Batch/batchAccounts/acct1"
    assert parse_resource_id(good).name == "acct1"
    for bad in (
        "acct1",
        good.replace("Microsoft.Batch", "Microsoft.Storage"),
        good + "/pools/x",
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Batch/batchAccounts/acct1",
    ):
        with pytest.raises(ConfigError, match="TES_BATCH_ACCOUNT_RESOURCE_ID"):
            BatchSettings.from_settings(
                Settings.from_env(
                    {
                        "TES_BATCH_ACCOUNT_URL": "http://127.0.0.1:9",
                        "TES_BATCH_ACCOUNT_RESOURCE_ID": bad,
                    }
                )
            )
