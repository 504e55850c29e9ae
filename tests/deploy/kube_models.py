"""Load Kubernetes objects into the official client's models, strictly.

The ``kubernetes`` client's own ``ApiClient.deserialize`` ignores fields it does not
know (an API server refuses or drops them: a typo such as ``readinesProbe`` would go
unnoticed) and accepts any ``kind``. :func:`load` first walks the object against the
models' declared fields and types (``openapi_types``/``attribute_map``, generated from
the API's OpenAPI schema), failing on any unknown kind or field or a value of the wrong
type, then builds the model with ``ApiClient.deserialize``, whose constructors refuse a
missing required field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes import client

KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
}
"""The kinds these manifests may hold, by ``apiVersion`` and ``kind``, and their models
(cluster-wide RBAC kinds load, so that a test can refuse them by name)."""

_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}
_LIST = re.compile(r"^list\[(?P<item>.+)\]$")
_DICT = re.compile(r"^dict[\[(](?P<key>[^,]+), (?P<value>.+)[\])]$")


class ModelError(ValueError):
    """An object that the Kubernetes models do not accept, with the path to the fault."""


class _Response:
    """What ``ApiClient.deserialize`` reads: an HTTP response's body in ``data``."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body)


def model_name(obj: dict[str, Any]) -> str:
    """The model class name of ``obj`` (``V1Deployment``), or :class:`ModelError`."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key not in KINDS:
        raise ModelError(f"unknown kind {key[1]!r} of apiVersion {key[0]!r}")
    return KINDS[key]


def check_fields(value: Any, type_name: str, path: str) -> None:
    """Raise :class:`ModelError` where ``value`` has a field or type ``type_name`` lacks."""
    if value is None:
        return
    if type_name == "object":  # IntOrString, RawExtension: any JSON
        return
    if type_name in _SCALARS:
        if isinstance(value, bool) and type_name != "bool":
            raise ModelError(f"{path}: {value!r} is not a {type_name}")
        if not isinstance(value, _SCALARS[type_name]):
            raise ModelError(f"{path}: {value!r} is not a {type_name}")
        return
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            raise ModelError(f"{path}: expected a list of {match['item']}")
        for index, item in enumerate(value):
            check_fields(item, match["item"], f"{path}[{index}]")
        return
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            raise ModelError(f"{path}: expected a map of {match['value']}")
        for key, item in value.items():
            check_fields(key, match["key"], f"{path} key {key!r}")
            check_fields(item, match["value"], f"{path}.{key}")
        return
    model = getattr(client.models, type_name, None)
    if model is None:
        raise ModelError(f"{path}: no model {type_name} in the kubernetes client")
    if not isinstance(value, dict):
        raise ModelError(f"{path}: expected an object ({type_name})")
    attributes = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in attributes:
            raise ModelError(f"{path}.{key}: unknown field of {type_name}")
        check_fields(item, model.openapi_types[attributes[key]], f"{path}.{key}")


def load(obj: dict[str, Any]) -> Any:
    """``obj`` as an instance of its client model, or :class:`ModelError` saying why not."""
    name = model_name(obj)
    where = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
    check_fields(obj, name, where)
    try:
        return client.ApiClient().deserialize(_Response(obj), name)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{where}: {exc}") from exc
