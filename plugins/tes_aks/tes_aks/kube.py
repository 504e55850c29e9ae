"""A small face on the official Kubernetes client: the calls this plugin makes, on dicts.

Objects are sent and read as plain JSON dicts (the API's shapes; ``_preload_content``
off), which keeps one reconcile pass over a thousand tasks cheap. Every call is counted
by verb and resource kind (:attr:`Kube.calls`), for the benchmark and the tests.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FOREGROUND = "Foreground"


class KubeError(RuntimeError):
    """The API refused or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def api_client(kubeconfig: str = "", context: str = "", timeout: float = 30.0) -> Any:
    """An ``ApiClient`` from ``kubeconfig`` (or ``$KUBECONFIG``, ``~/.kube/config``), else
    the pod's in-cluster service account."""
    from kubernetes import config

    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    try:
        if path:
            client = config.new_client_from_config(
                config_file=path, context=context or None, persist_config=False
            )
        else:
            from kubernetes.client import ApiClient, Configuration

            configuration = Configuration()
            config.load_incluster_config(client_configuration=configuration)
            client = ApiClient(configuration=configuration)
    except config.ConfigException as exc:
        raise KubeError(
            f"no usable Kubernetes configuration ({path or 'in-cluster'}): {exc}"
        ) from None
    client.configuration.retries = 1
    return client


_KINDS = {
    "Job": ("BatchV1Api", "job"),
    "Pod": ("CoreV1Api", "pod"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "PersistentVolumeClaim": ("CoreV1Api", "persistent_volume_claim"),
}


class Kube:
    """The calls the plugin makes, on one API client."""

    def __init__(self, client: Any, timeout: float = 30.0) -> None:
        from kubernetes import client as k8s

        self._apis = {"BatchV1Api": k8s.BatchV1Api(client), "CoreV1Api": k8s.CoreV1Api(client)}
        self._exception = k8s.exceptions.ApiException
        self._timeout = timeout
        self.calls: Counter[tuple[str, str]] = Counter()

    def _call(self, verb: str, kind: str, *args: Any, raw: bool = True, **kwargs: Any) -> Any:
        api_name, suffix = _KINDS[kind]
        method = getattr(self._apis[api_name], verb.format(kind=suffix))
        self.calls[(verb.split("_", 1)[0], kind)] += 1
        try:
            response = method(
                *args, _request_timeout=self._timeout, _preload_content=not raw, **kwargs
            )
        except self._exception as exc:
            message = f"{kind} {verb.split('_', 1)[0]}: {exc.status} {exc.reason} " + _field(
                exc.body, "message"
            )
            raise KubeError(message.strip(), exc.status or 0, _field(exc.body, "reason")) from None
        except Exception as exc:  # connection refused, timeout, TLS: the API is unreachable
            raise KubeError(
                f"{kind} {verb.split('_', 1)[0]}: the Kubernetes API is not "
                f"reachable: {exc.__class__.__name__}: {exc}"
            ) from None
        if not raw:
            return response
        data = response.data
        return json.loads(data) if data else {}

    def create(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``manifest``; if an object of that name exists, read it instead (a
        repeated submit adopts what the first made). ``(object, created)``."""
        kind = manifest["kind"]
        namespace = manifest["metadata"]["namespace"]
        try:
            return self._call("create_namespaced_{kind}", kind, namespace, manifest), True
        except KubeError as exc:
            if exc.status != 409:
                raise
        return self.get(kind, namespace, manifest["metadata"]["name"]) or manifest, False

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, ``None`` when it does not exist."""
        try:
            return self._call("read_namespaced_{kind}", kind, name, namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, kind: str, namespace: str, selector: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` whose labels match ``selector`` (the
        first ``limit`` of them when given)."""
        return self.list_versioned(kind, namespace, selector, limit)[0]

    def list_versioned(
        self, kind: str, namespace: str, selector: str, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """:meth:`list`, and the list's ``resourceVersion`` (where a watch starts)."""
        extra = {} if limit is None else {"limit": limit}
        data = self._call(
            "list_namespaced_{kind}", kind, namespace, label_selector=selector, **extra
        )
        version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        return list(data.get("items") or []), version

    def watch(
        self, kind: str, namespace: str, selector: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The changes (``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK``; the object as a
        dict) of the objects of ``kind`` in ``namespace`` matching ``selector`` after
        ``resource_version``, for up to ``timeout`` seconds (the API ends the watch then).
        :class:`KubeError` with status 410 when that version is too old (list again)."""
        from kubernetes import watch

        api_name, suffix = _KINDS[kind]
        method = getattr(self._apis[api_name], f"list_namespaced_{suffix}")
        self.calls[("watch", kind)] += 1
        # return_type "object": the events' objects stay dicts (no model to validate)
        stream = watch.Watch(return_type="object").stream(
            method,
            namespace,
            label_selector=selector,
            resource_version=resource_version,
            timeout_seconds=max(1, int(timeout)),
            allow_watch_bookmarks=True,
            _request_timeout=(self._timeout, timeout + self._timeout),
        )
        try:
            for event in stream:  # raw_object: the dict (the client's ERROR handling needs it)
                yield str(event.get("type")), dict(event.get("raw_object") or {})
        except self._exception as exc:
            raise KubeError(
                f"{kind} watch: {exc.status} {exc.reason}",
                exc.status or 0,
                _field(exc.body, "reason"),
            ) from None
        except Exception as exc:  # a broken connection or a read timeout
            raise KubeError(
                f"{kind} watch: the Kubernetes API is not reachable: "
                f"{exc.__class__.__name__}: {exc}"
            ) from None
        finally:
            stream.close()

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Merge ``body`` into the object."""
        self._call(
            "patch_namespaced_{kind}",
            kind,
            name,
            namespace,
            body,
            _content_type="application/merge-patch+json",
        )

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete one object with foreground propagation; ``False`` if it was gone."""
        try:
            self._call(
                "delete_namespaced_{kind}", kind, name, namespace, propagation_policy=FOREGROUND
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def delete_all(self, kind: str, namespace: str, selector: str) -> None:
        """Delete every object of ``kind`` matching ``selector`` (foreground propagation):
        one list, then one delete per object, so ``list`` and ``delete`` are the only verbs
        it needs (no ``deletecollection``)."""
        for obj in self.list(kind, namespace, selector):
            self.delete(kind, namespace, obj["metadata"]["name"])

    def pod_log(
        self,
        namespace: str,
        name: str,
        tail_bytes: int | None = 10240,
        container: str | None = None,
    ) -> str:
        """The last ``tail_bytes`` of the log of a pod (of its ``container``: needed when it
        has several), all of it for ``None`` (``""`` when there is none)."""
        extra: dict[str, Any] = {} if tail_bytes is None else {"tail_lines": 1000}
        text = self.pod_log_bytes(namespace, name, container, **extra).decode("utf-8", "replace")
        return text if tail_bytes is None else text[-tail_bytes:]

    def pod_log_bytes(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        limit_bytes: int | None = None,
        tail_lines: int | None = None,
    ) -> bytes:
        """A container's log as bytes: its first ``limit_bytes`` (of its last
        ``tail_lines`` lines when given), all of it otherwise (``b""`` when there is none
        yet or no longer)."""
        self.calls[("log", "Pod")] += 1
        api = self._apis["CoreV1Api"]
        extra: dict[str, Any] = {}
        if container:
            extra["container"] = container
        if limit_bytes is not None:
            extra["limit_bytes"] = max(1, limit_bytes)
        if tail_lines is not None:
            extra["tail_lines"] = tail_lines
        try:
            response = api.read_namespaced_pod_log(
                name, namespace, _preload_content=False, _request_timeout=self._timeout, **extra
            )
        except self._exception as exc:
            if exc.status in (400, 404):
                return b""
            raise KubeError(f"Pod log: {exc.status} {exc.reason}", exc.status or 0) from None
        except Exception as exc:
            raise KubeError(f"Pod log: the Kubernetes API is not reachable: {exc}") from None
        return bytes(response.data or b"")


def _field(body: Any, name: str) -> str:
    """A field of the ``Status`` object an API error carries (``""`` if none)."""
    try:
        return str(json.loads(body or "{}").get(name, ""))
    except (ValueError, AttributeError):
        return ""
