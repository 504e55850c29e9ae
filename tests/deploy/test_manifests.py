"""``deploy/kubernetes``: the kustomize base and the AKS overlay render, every object loads
into the official client's models (unknown kinds and fields fail), and the properties an
operator relies on hold: probes and resource requests, the migration before the API and
the API before the workers, RBAC inside the namespace only, no secret value anywhere,
images set by kustomize, a termination grace above TES_SHUTDOWN_GRACE, non-root pods
with read-only root filesystems."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import AKS, KUBERNETES, KUSTOMIZATIONS
from tests.deploy.kube_models import ModelError, load

ROOT = KUBERNETES.parents[1]
STEP = "tes-core/rollout-step"
Objects = list[dict[str, Any]]
SECRET_NAMES = re.compile(r"(URL|SECRET|PASSWORD|TOKEN|KEY|CONNECTION_STRING)$")
"""Settings whose value may hold a credential: only ever from a Secret."""
PLAIN_URL_SETTINGS = {"TES_ORGANIZATION_URL", "TES_CONTACT_URL", "TES_DOCUMENTATION_URL",
                      "TES_STORAGE_ACCOUNT_URL", "TES_AUTH_JWKS_URL"}
"""URL settings that name a public address, never a credential."""


def pod_owners(objects: Objects) -> Iterator[dict[str, Any]]:
    """The Deployments and Jobs: the objects that run pods."""
    return (obj for obj in objects if obj["kind"] in ("Deployment", "Job"))


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container (init containers too) of a Deployment's or Job's pods."""
    spec = obj["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` whose name is ``name`` or, for generated ones, starts
    with ``name-`` (kustomize's hash suffix)."""
    found = [obj for obj in objects if obj["kind"] == kind and re.fullmatch(
        rf"{re.escape(name)}(-[a-z0-9]{{10}})?", obj["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def settings(objects: Objects) -> dict[str, str]:
    """The generated ConfigMap of settings every process reads."""
    return named(objects, "ConfigMap", "tes-settings")["data"]


@pytest.fixture(params=sorted(KUSTOMIZATIONS))
def objects(request, rendered) -> Objects:
    """The objects of one kustomization (each test runs for the base and the overlay)."""
    return rendered[request.param]


def test_every_object_loads_into_the_client_models(objects: Objects) -> None:
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Job", "Role", "RoleBinding", "Service", "Ingress",
            "ServiceAccount", "ConfigMap"} <= kinds, kinds
    for obj in objects:
        model = load(obj)
        assert model.metadata.name == obj["metadata"]["name"]


def test_the_strict_loader_refuses_unknown_fields_kinds_and_missing_required_ones(
    rendered,
) -> None:
    api = named(rendered["base"], "Deployment", "tes-api")
    typo = yaml.safe_load(yaml.safe_dump(api))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(ModelError, match=r"containers\[0\]\.readinesProbe: unknown field"):
        load(typo)
    with pytest.raises(ModelError, match="unknown kind 'Deploymnet'"):
        load({**api, "kind": "Deploymnet"})
    nameless = yaml.safe_load(yaml.safe_dump(api))
    del nameless["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ModelError, match="name"):
        load(nameless)
    wrong_type = yaml.safe_load(yaml.safe_dump(api))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(ModelError, match="replicas: 'two' is not a int"):
        load(wrong_type)


def test_every_deployment_has_probes_and_resource_requests(objects: Objects) -> None:
    deployments = [obj for obj in objects if obj["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"tes-api", "tes-worker"}
    for deployment in deployments:
        for container in containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} has no {probe}"
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), f"{where} requests {requests}"
            assert "memory" in container["resources"].get("limits", {}), where
            ports = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, f"{where} {probe}"


def test_the_api_probes_ask_the_health_routes_and_run_the_production_gunicorn(
    objects: Objects,
) -> None:
    api = containers(named(objects, "Deployment", "tes-api"))[0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    command = api["command"]
    assert command[0] == "gunicorn" and command[-1] == "tes_core.app:create_app()"
    assert "--config=python:tes_core.gunicorn_conf" in command
    worker = containers(named(objects, "Deployment", "tes-worker"))[0]
    assert worker["command"] == ["tes-server", "worker"]
    port = next(p["containerPort"] for p in worker["ports"] if p["name"] == "metrics")
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["TES_WORKER_METRICS_PORT"] == str(port), "the probes ask the metrics server"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_migrations_then_api_then_workers(objects: Objects) -> None:
    """Every object has a rollout step; the migration Job and all it needs come first,
    the API second, the workers last, and nothing needs an object of a later step."""
    steps = {}
    for obj in objects:
        step = obj["metadata"].get("labels", {}).get(STEP)
        assert step in ("1", "2", "3"), f"{obj['kind']}/{obj['metadata']['name']}: {step}"
        steps[obj["kind"], obj["metadata"]["name"]] = int(step)
    job = named(objects, "Job", "tes-db-upgrade")
    assert containers(job)[0]["command"] == ["tes-server", "db", "upgrade"]
    assert steps["Job", "tes-db-upgrade"] == 1
    assert steps["Deployment", "tes-api"] == 2
    assert steps["Deployment", "tes-worker"] == 3
    for owner in pod_owners(objects):
        own = steps[owner["kind"], owner["metadata"]["name"]]
        spec = owner["spec"]["template"]["spec"]
        needed = [("ServiceAccount", spec["serviceAccountName"])]
        needed += [("ConfigMap", source["configMapRef"]["name"])
                   for c in containers(owner) for source in c.get("envFrom", [])]
        for kind, name in needed:
            assert steps[kind, name] <= own, f"{owner['metadata']['name']} needs {kind} {name}"


def test_the_readme_applies_the_steps_in_order_and_waits_for_the_migration() -> None:
    text = (KUBERNETES / "README.md").read_text()
    order = [(match.start(), int(match["step"])) for match in
             re.finditer(rf"-l {re.escape(STEP)}=(?P<step>\d)", text)]
    assert [step for _, step in order][:3] == [1, 2, 3], order
    wait = text.find("kubectl wait --for=condition=complete job/tes-db-upgrade")
    assert order[0][0] < wait < order[1][0], "wait for the migration before the API"
    assert order[1][0] < text.find("kubectl rollout status deployment/tes-api") < order[2][0]
    delete = text.find("kubectl delete job tes-db-upgrade --ignore-not-found")
    assert 0 <= delete < order[0][0], "a Job cannot change: delete the last one first"


def test_rbac_grants_nothing_cluster_wide(objects: Objects) -> None:
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, kinds
    namespace = named(objects, "Namespace", "tes")["metadata"]["name"]
    roles = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Role"}
    for role in roles.values():
        assert role["metadata"]["namespace"] == namespace
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"Role {role['metadata']['name']}: {rule}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            assert not {"secrets", "roles", "rolebindings"} & set(rule["resources"]), rule
    for binding in (obj for obj in objects if obj["kind"] == "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role", binding
        assert binding["roleRef"]["name"] in roles, binding
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            assert subject.get("namespace", namespace) == namespace, subject


def _grants(role: dict[str, Any]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = f"{group}/{resource}" if group else resource
                grants.setdefault(key, set()).update(rule["verbs"])
    return grants


def readme_rbac() -> list[dict[str, set[str]]]:
    """The two tables of the "RBAC" section of tes-aks' README (the server's, then the
    coordinator's), as grants like :func:`_grants`'s."""
    text = (ROOT / "plugins" / "tes_aks" / "README.md").read_text()
    section = text.split("\n## RBAC\n", 1)[1].split("\n## ", 1)[0]
    tables: list[dict[str, set[str]]] = []
    for block in re.split(r"\n(?=\| API group)", section)[1:]:
        grants: dict[str, set[str]] = {}
        for row in re.findall(r"^\|([^|\n]+)\|([^|\n]+)\|([^|\n]+)\|$", block, re.M)[2:]:
            group = re.findall(r"`([^`]*)`", row[0])[0].strip('"')
            resource = re.findall(r"`([^`]*)`", row[1])[0]
            grants[f"{group}/{resource}" if group else resource] = set(
                re.findall(r"`([^`]*)`", row[2]))
        tables.append(grants)
    assert len(tables) == 2, tables
    return tables


def test_the_roles_grant_exactly_what_tes_aks_documents(objects: Objects) -> None:
    """The server's and the coordinators' Roles are the tables of plugins/tes_aks'
    README, no more: jobs, pods (logs included), PVCs and ConfigMaps, never a watch
    it does not make or a wildcard."""
    server, coordinator = readme_rbac()
    assert _grants(named(objects, "Role", "tes-server")) == server
    assert _grants(named(objects, "Role", "tes-coordinator")) == coordinator
    assert set(coordinator) <= {"batch/jobs", "pods", "pods/log", "persistentvolumeclaims",
                                "configmaps"}, coordinator
    binding = named(objects, "RoleBinding", "tes-coordinator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tes-coordinator",
                                    "namespace": "tes"}]
    assert settings(objects)["TES_AKS_COORDINATOR_SERVICE_ACCOUNT"] == "tes-coordinator"


def test_the_coordinators_run_the_deployed_image(objects: Objects) -> None:
    """The image tes-aks starts coordinators from is the one kustomize set (it holds
    tes-aks-coordinator when built with PLUGINS=plugins/tes_aks)."""
    images = {c["image"] for owner in pod_owners(objects) for c in containers(owner)}
    assert {settings(objects)["TES_AKS_COORDINATOR_IMAGE"]} == images


def test_no_secret_value_in_any_manifest(objects: Objects) -> None:
    assert "Secret" not in {obj["kind"] for obj in objects}
    for key in settings(objects):
        assert not SECRET_NAMES.search(key) or key in PLAIN_URL_SETTINGS, (
            f"{key} in a ConfigMap: it belongs in a Secret")
    for owner in pod_owners(objects):
        for container in containers(owner):
            env = {e["name"]: e for e in container.get("env", [])}
            for name, entry in env.items():
                if SECRET_NAMES.search(name) and name not in PLAIN_URL_SETTINGS:
                    assert "value" not in entry, f"{name} has a value in {owner['kind']}"
                    assert "secretKeyRef" in entry["valueFrom"], name
            for name in ("TES_DATABASE_URL", "TES_BROKER_URL"):
                assert env[name]["valueFrom"]["secretKeyRef"]["key"] == "url", name
    text = yaml.safe_dump_all(objects)
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "a URL with a password"
    assert not re.search(r"(?i)AccountKey=|SharedAccessSignature|sig=|password:", text)


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_images_are_set_by_kustomize_only(name: str, rendered, renderer, tmp_path) -> None:
    """One image everywhere, named in no resource file; an overlay on top of the base or
    of the AKS overlay changes it in every container with kustomize's ``images``."""
    images = {c["image"] for owner in pod_owners(rendered[name]) for c in containers(owner)}
    assert len(images) == 1, images
    for path in KUBERNETES.rglob("*.yaml"):  # no resource names a registry or tag
        if path.name != "kustomization.yaml":
            assert set(re.findall(r"image: (\S+)", path.read_text())) <= {"tes-core"}, path
    overlay = tmp_path / "mine"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes no absolute path
        "resources": [os.path.relpath(KUSTOMIZATIONS[name], overlay)],
        "images": [{"name": images.pop().rsplit(":", 1)[0], "newName": "registry.test/tes/core",
                    "newTag": "1.2.3"}],
        # as deploy/kubernetes/README.md says an overlay that sets the image does
        "replacements": yaml.safe_load((AKS / "kustomization.yaml").read_text())[
            "replacements"],
    }))
    mine = renderer(overlay)
    assert {c["image"] for owner in pod_owners(mine) for c in containers(owner)} == {
        "registry.test/tes/core:1.2.3"}
    assert settings(mine)["TES_AKS_COORDINATOR_IMAGE"] == "registry.test/tes/core:1.2.3"


def test_termination_grace_covers_the_shutdown_grace(objects: Objects) -> None:
    grace = float(settings(objects)["TES_SHUTDOWN_GRACE"])
    for owner in pod_owners(objects):
        spec = owner["spec"]["template"]["spec"]
        if owner["kind"] == "Job":
            continue  # the migration is never stopped on purpose
        pause = max((c.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
                     .get("seconds", 0) for c in spec["containers"]), default=0)
        # A second of margin per step: the pause, then the hand-over, then the exit.
        assert spec["terminationGracePeriodSeconds"] >= pause + grace + 2, (
            owner["metadata"]["name"], spec["terminationGracePeriodSeconds"], pause, grace)
    api = named(objects, "Deployment", "tes-api")["spec"]["strategy"]["rollingUpdate"]
    assert api == {"maxUnavailable": 0, "maxSurge": 1}, "the API never loses a serving pod"
    workers = named(objects, "Deployment", "tes-worker")["spec"]["strategy"]["rollingUpdate"]
    assert workers == {"maxUnavailable": 1, "maxSurge": 0}, "workers roll one by one"


def test_pods_run_as_non_root_with_read_only_root_filesystems(objects: Objects) -> None:
    data_dir = settings(objects)["TES_DATA_DIR"]
    uid = int(re.search(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)[1])
    for owner in pod_owners(objects):
        spec = owner["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid, "the image's user"
        for container in containers(owner):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            writable = {m["mountPath"] for m in container["volumeMounts"]}
            assert {data_dir, "/tmp"} <= writable, "what the server writes is a volume"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if "PROMETHEUS_MULTIPROC_DIR" in env:
                assert env["PROMETHEUS_MULTIPROC_DIR"] in writable


def test_the_dockerfile_copies_what_exists_and_sets_the_data_folder(rendered) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
    assert f"TES_DATA_DIR={settings(rendered['base'])['TES_DATA_DIR']}" in dockerfile


def test_the_aks_overlay_uses_workload_identity_and_the_routing_add_on(rendered) -> None:
    objects = rendered["aks"]
    account = named(objects, "ServiceAccount", "tes-server")
    assert "azure.workload.identity/client-id" in account["metadata"]["annotations"]
    for owner in pod_owners(objects):
        labels = owner["spec"]["template"]["metadata"]["labels"]
        assert labels["azure.workload.identity/use"] == "true", owner["metadata"]["name"]
        selector = owner["spec"]["template"]["spec"]["nodeSelector"]
        assert selector == {"kubernetes.io/os": "linux"}
    ingress = named(objects, "Ingress", "tes-api")
    assert ingress["spec"]["ingressClassName"] == "webapprouting.kubernetes.azure.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "tes-api-tls"
    timeout = int(ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-read-timeout"])
    assert timeout > 300, "event streams stay open TES_EVENTS_MAX_SECONDS (300 s)"
