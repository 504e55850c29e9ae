"""A fake Kubernetes API server over real HTTP on loopback, for the official client.

It follows the API's documented shapes for what this plugin uses: create (409
AlreadyExists), get (404 NotFound as a ``Status``), list with equality-based label
selectors, watch (``?watch=true``: chunked JSON lines from a ``resourceVersion``, 410 Gone
once it is compacted away), merge patch, delete with propagation (dependents found by
ownerReferences), deletecollection, and ``pods/{name}/log`` per container. It plays the
Job controller too: a new Job gets one Pod (``<job>-<5 letters>``, the template's labels
plus ``job-name``, owned by the Job). Nothing moves by itself: a :class:`Kubelet` (the
simulator) moves Pods and Jobs through their lifecycles, by rules the tests give. Every
request is recorded, so tests and the benchmark count calls.

Why not PyPI's kmock 0.8: it ignores label selectors, has no ``pods/log`` and no Job
controller, and runs on aiohttp in its own event loop; a hundred lines of our own follow
the documented API more closely for what the plugin needs.
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLURALS = {
    "jobs": "Job",
    "pods": "Pod",
    "configmaps": "ConfigMap",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}
API_VERSIONS = {"Job": "batch/v1", "Pod": "v1", "ConfigMap": "v1", "PersistentVolumeClaim": "v1"}


def now() -> str:
    """The current time as the API writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(labels: dict[str, str], selector: str) -> bool:
    """Whether ``labels`` match an equality-based selector (``a=b,c!=d,e,!f``)."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class Request:
    """One request the fake served."""

    method: str
    kind: str
    namespace: str
    name: str | None
    query: dict[str, str]
    subresource: str = ""


@dataclass
class FakeKube:
    """The fake API's state; :meth:`start` serves it."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """Container logs by (namespace, pod, container)."""
    requests: list[Request] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    down: bool = False
    """While true every request gets 503 (the API server unreachable, as the client sees it)."""
    on_create: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    version: int = 0
    """The last resourceVersion given (one counter for every kind, as etcd's revision)."""
    history: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    """Changes as watch events ``(resourceVersion, type, object)``, the newest last; a watch
    from before the oldest kept gets 410 Gone (:meth:`compact` drops them all)."""
    history_size: int = 10_000
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- store -----------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as the API would (uid, times, resourceVersion)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        obj.setdefault("apiVersion", API_VERSIONS[obj["kind"]])
        with self.lock:
            event = (
                "MODIFIED"
                if (obj["kind"], meta["namespace"], meta["name"]) in self.objects
                else "ADDED"
            )
            self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
            self._changed(event, obj)
        return obj

    def _changed(self, event: str, obj: dict[str, Any]) -> None:
        """Give ``obj`` the next resourceVersion and keep the change for watches."""
        with self.lock:
            self.version += 1
            obj["metadata"]["resourceVersion"] = str(self.version)
            self.history.append((self.version, event, copy.deepcopy(obj)))
            del self.history[: -self.history_size]
            self.changed.notify_all()

    def compact(self) -> None:
        """Forget every change so far (as etcd's compaction): a watch from an older
        resourceVersion then gets 410 Gone and must list again."""
        with self.lock:
            self.history.clear()

    def find(
        self, kind: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Stored objects of ``kind`` (in ``namespace``) matching ``selector``."""
        with self.lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self.objects.items())
                if k == kind
                and (namespace is None or ns == namespace)
                and matches(o["metadata"].get("labels") or {}, selector)
            ]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One stored object (a copy)."""
        with self.lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def update(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into a stored object (what a controller or kubelet does)."""
        with self.lock:
            obj = self.objects.get((kind, namespace, name))
            if obj is not None:
                merge(obj, patch)
                self._changed("MODIFIED", obj)

    def remove(self, kind: str, namespace: str, name: str) -> bool:
        """Delete an object and, as the garbage collector, everything it owns."""
        with self.lock:
            obj = self.objects.pop((kind, namespace, name), None)
            if obj is None:
                return False
            self._changed("DELETED", obj)
            uid = obj["metadata"]["uid"]
            owned = [
                key
                for key, o in self.objects.items()
                if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or ())
            ]
            for key in owned:
                self.remove(*key)
            return True

    def count(self, method: str, kind: str) -> int:
        """How many requests of ``method`` on ``kind`` were served (``LIST`` for lists)."""
        return sum(1 for r in self.requests if r.method == method and r.kind == kind)

    # -- the Job controller ----------------------------------------------------------

    def _job_created(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        template = job["spec"]["template"]
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            "job-name": meta["name"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
        }
        job.setdefault("status", {})["active"] = 1
        job["status"]["startTime"] = now()
        self.put(
            {
                "kind": "Pod",
                "metadata": {
                    "name": f"{meta['name']}-{suffix}",
                    "namespace": meta["namespace"],
                    "labels": labels,
                    "annotations": dict(meta.get("annotations") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending"},
            }
        )

    # -- HTTP ------------------------------------------------------------------------

    def start(self) -> tuple[ThreadingHTTPServer, str]:
        """Serve on a free loopback port; ``(server, base URL)``."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def do_PATCH(self) -> None:
                fake._serve(self, "PATCH")

            def do_PUT(self) -> None:
                fake._serve(self, "PUT")

            def do_DELETE(self) -> None:
                fake._serve(self, "DELETE")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}"

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"null") if length else None
        segments = [s for s in parts.path.split("/") if s]
        # /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]] or /apis/batch/v1/namespaces/...
        start = 2 if segments[:1] == ["api"] else 3
        rest = segments[start:]
        if self.down:
            return _reply(handler, 503, _status(503, "ServiceUnavailable", "the fake is down"))
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in PLURALS:
            return _reply(handler, 404, _status(404, "NotFound", f"no route {parts.path}"))
        namespace, kind = rest[1], PLURALS[rest[2]]
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else ""
        verb = "LIST" if method == "GET" and name is None else method
        if method == "DELETE" and name is None:
            verb = "DELETECOLLECTION"
        # The API parses booleans as Go's strconv.ParseBool (the client sends "True").
        if verb == "LIST" and query.get("watch") in ("1", "t", "T", "true", "True", "TRUE"):
            with self.lock:
                self.requests.append(Request("WATCH", kind, namespace, None, query))
            return self._watch(handler, kind, namespace, query)
        with self.lock:
            named = (
                name or ((body or {}).get("metadata") or {}).get("name") if verb == "POST" else name
            )
            self.requests.append(Request(verb, kind, namespace, named, query, sub))
            code, answer = self._answer(verb, kind, namespace, name, sub, query, body)
        if isinstance(answer, str):
            data = answer.encode()
            handler.send_response(code)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return None
        return _reply(handler, code, answer)

    def _answer(
        self,
        verb: str,
        kind: str,
        namespace: str,
        name: str | None,
        sub: str,
        query: dict[str, str],
        body: Any,
    ) -> tuple[int, Any]:
        key = (kind, namespace, name or "")
        if verb == "LIST":
            items = self.find(kind, namespace, query.get("labelSelector", ""))
            return 200, {
                "kind": f"{kind}List",
                "apiVersion": API_VERSIONS[kind],
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }
        if verb == "POST":
            meta = body.setdefault("metadata", {})
            meta["namespace"] = namespace
            if (kind, namespace, meta.get("name")) in self.objects:
                return 409, _status(
                    409, "AlreadyExists", f'{kind.lower()}s "{meta.get("name")}" already exists'
                )
            obj = self.put(body)
            if kind == "Job":
                self._job_created(obj)
            for hook in self.on_create:
                hook(obj)
            return 201, obj
        if verb == "DELETECOLLECTION":
            for obj in self.find(kind, namespace, query.get("labelSelector", "")):
                self.remove(kind, namespace, obj["metadata"]["name"])
            return 200, _status(200, "", "", "Success")
        obj = self.objects.get(key)
        if obj is None:
            return 404, _status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
        if verb == "GET" and sub == "log":
            return self._log(obj, query)
        if verb == "GET":
            return 200, obj
        if verb == "PATCH":
            if isinstance(body, dict):
                merge(obj, body)
            self._changed("MODIFIED", obj)
            return 200, obj
        if verb == "PUT":
            body["metadata"]["uid"] = obj["metadata"]["uid"]
            self.objects[key] = body
            self._changed("MODIFIED", body)
            return 200, body
        if verb == "DELETE":
            self.remove(kind, namespace, name or "")
            return 200, _status(200, "", "", "Success")
        return 405, _status(405, "MethodNotAllowed", verb)

    def _watch(
        self, handler: BaseHTTPRequestHandler, kind: str, namespace: str, query: dict[str, str]
    ) -> None:
        """``?watch=true``: a chunked stream of JSON lines ``{"type", "object"}`` of the
        objects of ``kind`` in ``namespace`` matching ``labelSelector``, every change after
        ``resourceVersion`` (without one, or ``0``: ADDED for each object there now, then
        the changes), until ``timeoutSeconds``. A ``resourceVersion`` older than the kept
        changes gets one ERROR event holding a 410 Gone ``Status``, as the API documents
        (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes)."""
        selector = query.get("labelSelector", "")
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: str, obj: dict[str, Any]) -> None:
            line = json.dumps({"type": event, "object": obj}).encode() + b"\n"
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (
                obj["kind"] == kind
                and meta.get("namespace") == namespace
                and matches(meta.get("labels") or {}, selector)
            )

        try:
            with self.lock:
                since = int(query.get("resourceVersion") or 0)
                oldest = self.history[0][0] if self.history else self.version + 1
                if since and since < oldest - 1:
                    pending: list[tuple[str, dict[str, Any]]] = [
                        (
                            "ERROR",
                            _status(
                                410, "Expired", f"too old resource version: {since} ({oldest - 1})"
                            ),
                        )
                    ]
                    since = -1
                elif not since:
                    pending = [
                        ("ADDED", copy.deepcopy(o)) for o in self.objects.values() if wanted(o)
                    ]
                    since = self.version
                else:
                    pending = []
            while pending or (since >= 0 and time.monotonic() < deadline and not self.down):
                for event, obj in pending:
                    send(event, obj)
                with self.lock:
                    if since < 0:
                        break
                    fresh = [(v, e, o) for v, e, o in self.history if v > since]
                    if not fresh:
                        self.changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                        fresh = [(v, e, o) for v, e, o in self.history if v > since]
                    if fresh:
                        since = fresh[-1][0]
                    pending = [(e, copy.deepcopy(o)) for _, e, o in fresh if wanted(o)]
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away
        handler.close_connection = True

    def _log(self, pod: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """``pods/{name}/log`` as documented: ``container`` (required when the pod has
        more than one), ``tailLines`` (the last lines), ``limitBytes`` (at most this many
        bytes from the start of what is selected)."""
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or (containers[0] if len(containers) == 1 else "")
        meta = pod["metadata"]
        if not container:
            return 400, _status(
                400,
                "BadRequest",
                "a container name must be specified for "
                f"pod {meta['name']}, choose one of: {containers}",
            )
        if container not in containers:
            return 400, _status(
                400, "BadRequest", f"container {container} is not valid for pod {meta['name']}"
            )
        text = self.logs.get((meta["namespace"], meta["name"], container), "")
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else ""
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode("utf-8", "replace")
        return 200, text

    def kubeconfig(self, url: str, folder: Path) -> Path:
        """A kubeconfig file pointing the client at ``url``."""
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                }
            )
        )
        return path


def schema_check(obj: dict[str, Any]) -> None:
    """Validate ``obj`` strictly against the Kubernetes API's JSON schemas (generated from
    its OpenAPI document, as PyPI's kubernetes-validate ships them)."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def _status(code: int, reason: str, message: str, status: str = "Failure") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "code": code,
    }


def _reply(handler: BaseHTTPRequestHandler, code: int, data: Any) -> None:
    payload = json.dumps(data).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
