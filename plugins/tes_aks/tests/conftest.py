"""Fixtures: one fake Kubernetes API and its kubelet for the whole session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakekube import FakeKube, schema_check  # noqa: E402
from simulator import Kubelet  # noqa: E402


class Cluster:
    """The fake API, its URL, a kubeconfig for it, and its kubelet."""

    def __init__(self, fake: FakeKube, url: str, kubeconfig: Path, kubelet: Kubelet) -> None:
        self.fake = fake
        self.url = url
        self.kubeconfig = kubeconfig
        self.kubelet = kubelet
        self.invalid: list[str] = []

    def check(self, obj: dict) -> None:
        """Load every object the plugin creates into the client's model of its kind."""
        from tes_aks.manifests import check

        if obj["kind"] == "Pod":
            return  # made by the fake's Job controller, not by the plugin
        try:
            check(obj)
            schema_check(obj)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            self.invalid.append(f"{obj['kind']} {obj['metadata'].get('name')}: {exc}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fake API server on loopback with a kubelet that runs pods in bubblewrap."""
    root = tmp_path_factory.mktemp("kube")
    fake = FakeKube()
    server, url = fake.start()
    kubeconfig = fake.kubeconfig(url, root)
    kubelet = Kubelet(fake, root, kubeconfig).start()
    result = Cluster(fake, url, kubeconfig, kubelet)
    fake.on_create.append(result.check)
    yield result
    kubelet.stop()
    server.shutdown()


@pytest.fixture()
def kube(cluster: Cluster):  # noqa: ANN201
    """A :class:`tes_aks.kube.Kube` on the fake API."""
    from tes_aks.kube import Kube, api_client

    return Kube(api_client(str(cluster.kubeconfig)))
