"""The Kubernetes objects of a task attempt, as plain dicts in the API's shapes.

The server writes the coordinator's Job, the plan in its environment
(:func:`coordinator_job`); the coordinator writes the task ConfigMap, the volume, the
staging Jobs, one Job per executor and the status ConfigMap. :func:`check` loads each
into the official client's models, so a field the API does not know fails in the tests,
not on a cluster.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from tes_runner.workspace import TES_WD, Workspace, plan_mounts

from . import follow, names
from .params import Placement

TASK_KEY = "task.json"
STATUS_KEY = "status.json"
PLAN_ENV = "TES_AKS_PLAN"
"""The coordinator container's variable that holds the plan (JSON), set by the server."""
TASK_MOUNT = "/etc/tes-task"
WORKDIR_VOLUME = "tes-wd"
SHARED_VOLUME = "shared-global"
TASK_VOLUME = "tes-task"
GPU_RESOURCE = "nvidia.com/gpu"
EXECUTOR_CONTAINER = "executor"
STDERR_CONTAINER = "stderr"
LOG_VOLUME = "tes-log"
LOG_MOUNT = "/.tes-aks"
"""Where an executor pod's ``emptyDir`` is mounted: its stderr file and ``done`` marker."""
STDERR_FILE = "stderr"
DONE_FILE = "done"
TAIL_BYTES = 10 * 1024
"""How much of each stream an executor log keeps (as the runner)."""
_FOLLOW_SOURCE = Path(follow.__file__).read_text(encoding="utf-8")
_FOLLOW_RESOURCES = {"cpu": "10m", "memory": "64Mi"}
NO_ESCALATION = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""Every container the plugin makes: never privileged, no setuid gains, the runtime's
default seccomp profile (an image's own user, root or not, is kept)."""
_PVC_ROOT = Path("/pvc")
_SHARED_ROOT = Path("/pvc-shared-global")


def _meta(plan: dict[str, Any], role: str, index: int | None = None) -> dict[str, Any]:
    task = plan["task"]
    return {
        "name": names.object_name(plan["base"], role, index),
        "namespace": plan["namespace"],
        "labels": names.labels(task["id"], plan["attempt"], role, index),
        "annotations": names.annotations(task["id"], task.get("name")),
    }


def task_config_map(plan: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap the coordinator writes first: the TES task document, which the
    staging Jobs mount as ``/etc/tes-task/task.json``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(plan, names.TASK_FILE),
        "data": {TASK_KEY: json.dumps(plan["task"])},
    }


def status_config_map(plan: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap the coordinator keeps up to date with the attempt's status document."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(plan, names.STATUS),
        "data": {STATUS_KEY: json.dumps(status)},
    }


def _job(meta: dict[str, Any], pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": pod_spec},
        },
    }


def _placement_spec(place: Placement) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if place.node_selector:
        spec["nodeSelector"] = dict(place.node_selector)
    if place.tolerations:
        spec["tolerations"] = [dict(t) for t in place.tolerations]
    if place.zones:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": place.zone_label,
                                    "operator": "In",
                                    "values": list(place.zones),
                                },
                            ]
                        }
                    ],
                }
            }
        }
    return spec


def placement_of(plan: dict[str, Any]) -> Placement:
    """The :class:`Placement` stored in a plan."""
    return Placement(**plan["placement"])


def coordinator_job(plan: dict[str, Any], image: str, service_account: str) -> dict[str, Any]:
    """The coordinator's Job: one pod, never restarted, running ``tes-aks-coordinator``.

    It tolerates the spot pool of a preemptible task (so it may share the executors'
    nodes) but needs no node selector, zone or GPU of theirs.
    """
    meta = _meta(plan, names.COORDINATOR)
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": service_account,
        "enableServiceLinks": False,
        "containers": [
            {
                "name": "coordinator",
                "image": image,
                "command": ["tes-aks-coordinator"],
                "env": [{"name": PLAN_ENV, "value": json.dumps(plan)}],
                "securityContext": dict(NO_ESCALATION),
                "resources": {
                    "requests": {"cpu": "50m", "memory": "128Mi"},
                    "limits": {"memory": "256Mi"},
                },
            }
        ],
    }
    tolerations = placement_of(plan).tolerations
    if tolerations:
        pod["tolerations"] = [dict(t) for t in tolerations]
    return _job(meta, pod)


def volume_claim(plan: dict[str, Any]) -> dict[str, Any]:
    """The task's working volume (``/tes-wd``), sized from ``disk_gb``."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{math.ceil(plan['disk_gb'] * 1024)}Mi"}},
    }
    if plan.get("storage_class"):
        spec["storageClassName"] = plan["storage_class"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(plan, names.VOLUME),
        "spec": spec,
    }


def _volumes(plan: dict[str, Any], task_file: bool = False) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": WORKDIR_VOLUME,
            "persistentVolumeClaim": {"claimName": names.object_name(plan["base"], names.VOLUME)},
        }
    ]
    if plan.get("shared_global_claim"):
        volumes.append(
            {
                "name": SHARED_VOLUME,
                "persistentVolumeClaim": {"claimName": plan["shared_global_claim"]},
            }
        )
    if task_file:
        volumes.append(
            {
                "name": TASK_VOLUME,
                "configMap": {
                    "name": names.object_name(plan["base"], names.TASK_FILE),
                    "items": [{"key": TASK_KEY, "path": TASK_KEY}],
                },
            }
        )
    return volumes


def executor_mounts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Volume mounts that make ``/tes-wd``, ``/tes-wd/shared-global`` and every TES path
    of the task mean in a pod what they mean in the runner (its own mount plan, with the
    task volume's folders as sub-paths)."""
    workspace = Workspace(base=_PVC_ROOT, shared_global=_SHARED_ROOT)
    mounts = []
    for mount in plan_mounts(plan["task"], workspace):
        if mount.host_path == _SHARED_ROOT:
            if not plan.get("shared_global_claim"):
                sub = "shared-global"  # no shared volume: a folder of the task's own
                mounts.append(
                    {"name": WORKDIR_VOLUME, "mountPath": mount.container_path, "subPath": sub}
                )
                continue
            mounts.append({"name": SHARED_VOLUME, "mountPath": mount.container_path})
            continue
        sub = Path(mount.host_path).relative_to(_PVC_ROOT).as_posix()
        entry = {"name": WORKDIR_VOLUME, "mountPath": mount.container_path, "subPath": sub}
        if mount.read_only:
            entry["readOnly"] = True
        mounts.append(entry)
    return mounts


def transfer_job(plan: dict[str, Any], role: str) -> dict[str, Any]:
    """The Job that runs ``tes-filetransfer download`` (role ``stage-in``) or ``upload``
    (``stage-out``) on the task volume, with the task document from the task ConfigMap.
    ``upload`` prints the output file logs as JSON, which the coordinator reads from the
    pod's log."""
    command = "download" if role == names.STAGE_IN else "upload"
    policy = plan.get("policy") or {}
    env = [
        {"name": "TES_FT_ALLOWED_LOCAL_DIRS", "value": ",".join(policy.get("local_dirs") or ())},
        {"name": "TES_FT_ALLOWED_HOSTS", "value": ",".join(policy.get("hosts") or ())},
    ]
    pod = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [
            {
                "name": "filetransfer",
                "image": plan["filetransfer_image"],
                "command": [
                    "tes-filetransfer",
                    command,
                    "--task",
                    f"{TASK_MOUNT}/{TASK_KEY}",
                    "--root",
                    f"{TES_WD}/shared",
                ],
                "env": env,
                "securityContext": dict(NO_ESCALATION),
                "volumeMounts": [
                    {"name": WORKDIR_VOLUME, "mountPath": TES_WD, "subPath": "tes-wd"},
                    {"name": TASK_VOLUME, "mountPath": TASK_MOUNT, "readOnly": True},
                ],
            }
        ],
        "volumes": _volumes(plan, task_file=True),
        **_placement_spec(placement_of(plan)),
    }
    return _job(_meta(plan, role), pod)


def executor_command(executor: dict[str, Any], capture: bool = True) -> list[str]:
    """The container's command: the executor's argv under a ``/bin/sh`` wrapper.

    With ``capture`` (the default) the wrapper sends stderr to the executor's own file,
    else to ``/.tes-aks/stderr`` (the pod's ``emptyDir``, copied to the pod log of the
    ``stderr`` container by :mod:`tes_aks.follow`), forwards SIGTERM to the executor,
    creates ``/.tes-aks/done`` once it ended and exits with its exit status. Without
    ``capture`` (an image without ``/bin/sh``) the argv runs as it is, wrapped only for
    stdin/stdout/stderr files, which then need the shell anyway (Kubernetes has no
    redirection of its own).
    """
    command = [str(part) for part in executor["command"]]
    stderr = executor.get("stderr") or (f"{LOG_MOUNT}/{STDERR_FILE}" if capture else None)
    redirects = []
    for operator, path in (
        ("<", executor.get("stdin")),
        (">", executor.get("stdout")),
        ("2>", stderr),
    ):
        if path:
            redirects.append(f"{operator}{shlex.quote(str(path))}")
    if not capture:
        if not redirects:
            return command
        return ["/bin/sh", "-c", f'exec "$@" {" ".join(redirects)}', "tes-executor", *command]
    script = (
        f'"$@" {" ".join(redirects)} & c=$!; '
        "trap 'kill -TERM \"$c\" 2>/dev/null' TERM INT; "
        'while :; do wait "$c"; s=$?; kill -0 "$c" 2>/dev/null || break; done; '
        f': >{LOG_MOUNT}/{DONE_FILE}; exit "$s"'
    )
    return ["/bin/sh", "-c", script, "tes-executor", *command]


def stderr_container(plan: dict[str, Any], index: int) -> dict[str, Any]:
    """The executor pod's second container (:mod:`tes_aks.follow` in the filetransfer
    image): the executor's stderr as its log. It follows ``/.tes-aks/stderr`` live, or
    prints the end of the executor's own stderr file once it ended; the task's mounts are
    read-only here."""
    executor = plan["task"]["executors"][index]
    done = f"{LOG_MOUNT}/{DONE_FILE}"
    if executor.get("stderr"):
        args = [str(executor["stderr"]), done, "--at-end", str(TAIL_BYTES)]
        mounts = [{**mount, "readOnly": True} for mount in executor_mounts(plan)]
    else:
        args = [f"{LOG_MOUNT}/{STDERR_FILE}", done]
        mounts = []
    return {
        "name": STDERR_CONTAINER,
        "image": plan["filetransfer_image"],
        "command": ["python3", "-c", _FOLLOW_SOURCE, *args],
        "volumeMounts": [*mounts, {"name": LOG_VOLUME, "mountPath": LOG_MOUNT, "readOnly": True}],
        "securityContext": dict(NO_ESCALATION),
        "resources": {"requests": dict(_FOLLOW_RESOURCES), "limits": dict(_FOLLOW_RESOURCES)},
    }


def _quantities(resources: dict[str, Any], gpus: int) -> dict[str, dict[str, str]]:
    amounts: dict[str, str] = {}
    if resources.get("cpu_cores"):
        amounts["cpu"] = str(int(resources["cpu_cores"]))
    if resources.get("ram_gb"):
        amounts["memory"] = f"{math.ceil(float(resources['ram_gb']) * 1024)}Mi"
    if gpus:
        amounts[GPU_RESOURCE] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def executor_job(plan: dict[str, Any], index: int, capture: bool = True) -> dict[str, Any]:
    """The Job of executor ``index``: its image, command, env and workdir, the task's
    resources as requests and limits, the task volume mounted as in the runner. With
    ``capture``, its stderr goes to the pod's second container (:func:`stderr_container`);
    without (the image has no ``/bin/sh``), the Job is named ``<base>-e<index>m`` and its
    pod log holds both streams."""
    task = plan["task"]
    executor = task["executors"][index]
    place = placement_of(plan)
    container: dict[str, Any] = {
        "name": EXECUTOR_CONTAINER,
        "image": executor["image"],
        "command": executor_command(executor, capture),
        "volumeMounts": executor_mounts(plan),
        "securityContext": dict(NO_ESCALATION),
    }
    if executor.get("workdir"):
        container["workingDir"] = executor["workdir"]
    if executor.get("env"):
        container["env"] = [{"name": str(k), "value": str(v)} for k, v in executor["env"].items()]
    quantities = _quantities(task.get("resources") or {}, place.gpus)
    if quantities:
        container["resources"] = quantities
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": _volumes(plan),
        **_placement_spec(place),
    }
    if capture:
        container["volumeMounts"] = [
            *container["volumeMounts"],
            {"name": LOG_VOLUME, "mountPath": LOG_MOUNT},
        ]
        pod["containers"].append(stderr_container(plan, index))
        pod["volumes"].append({"name": LOG_VOLUME, "emptyDir": {}})
    if place.service_account:
        pod["serviceAccountName"] = place.service_account
    else:
        pod["automountServiceAccountToken"] = False
    role = names.EXECUTOR_ROLE if capture else names.EXECUTOR_MERGED
    return _job(_meta(plan, role, index), pod)


_MODELS = {
    "Job": "V1Job",
    "ConfigMap": "V1ConfigMap",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Pod": "V1Pod",
}


def check(manifest: dict[str, Any]) -> Any:
    """Load ``manifest`` into the client's model of its kind; ``ValueError`` names a field
    the model does not know or a required one that is missing. Returns the model."""
    import kubernetes.client as k8s

    model_name = _MODELS[manifest["kind"]]
    return _load(getattr(k8s, model_name), manifest, manifest["kind"], k8s)


def _load(model: Any, data: Any, where: str, k8s: Any) -> Any:
    attribute_map = {json_key: attr for attr, json_key in model.attribute_map.items()}
    unknown = set(data) - set(attribute_map)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in data.items():
        attr = attribute_map[key]
        kwargs[attr] = _value(model.openapi_types[attr], value, f"{where}.{key}", k8s)
    try:
        return model(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _value(kind: str, value: Any, where: str, k8s: Any) -> Any:
    if value is None:
        return None
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        return [_value(kind[5:-1], v, f"{where}[{i}]", k8s) for i, v in enumerate(value)]
    if kind.startswith(("dict(", "dict[")):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object")
        inner = kind[5:-1].split(", ", 1)[1]
        return {k: _value(inner, v, f"{where}.{k}", k8s) for k, v in value.items()}
    if kind in ("str", "int", "bool", "float", "object", "datetime"):
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(kind)
        if expected and not isinstance(value, expected):
            raise ValueError(f"{where}: expected {kind}, got {type(value).__name__}")
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object ({kind})")
    return _load(getattr(k8s, kind), value, where, k8s)
