"""A fake Kubernetes API server over real HTTP on loopback, for the official client.

It follows the API's documented shapes for what this plugin uses: create (409
AlreadyExists), get (404 NotFound as a ``Status``), list with equality-based label
selectors, merge patch, delete with propagation (dependents found by ownerReferences),
deletecollection, and ``pods/{name}/log``. It plays the Job controller too: a new Job
gets one Pod (``<job>-<5 letters>``, the template's labels plus ``job-name``, owned by
the Job). Nothing moves by itself: a :class:`Kubelet` (the simulator) moves Pods and Jobs
through their lifecycles, by rules the tests give. Every request is recorded, so tests
and the benchmark count calls.

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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLURALS = {"jobs": "Job", "pods": "Pod", "configmaps": "ConfigMap",
           "persistentvolumeclaims": "PersistentVolumeClaim"}
API_VERSIONS = {"Job": "batch/v1", "Pod": "v1", "ConfigMap": "v1",
                "PersistentVolumeClaim": "v1"}


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

    # -- store -----------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as the API would (uid, times, resourceVersion)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        meta["resourceVersion"] = str(len(self.requests) + 1)
        obj.setdefault("apiVersion", API_VERSIONS[obj["kind"]])
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def find(self, kind: str, namespace: str | None = None,
             selector: str = "") -> list[dict[str, Any]]:
        """Stored objects of ``kind`` (in ``namespace``) matching ``selector``."""
        with self.lock:
            return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items())
                    if k == kind and (namespace is None or ns == namespace)
                    and matches(o["metadata"].get("labels") or {}, selector)]

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

    def remove(self, kind: str, namespace: str, name: str) -> bool:
        """Delete an object and, as the garbage collector, everything it owns."""
        with self.lock:
            obj = self.objects.pop((kind, namespace, name), None)
            if obj is None:
                return False
            uid = obj["metadata"]["uid"]
            owned = [key for key, o in self.objects.items()
                     if any(ref.get("uid") == uid
                            for ref in o["metadata"].get("ownerReferences") or ())]
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
        labels = {**(template.get("metadata") or {}).get("labels", {}),
                  "job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"],
                  "controller-uid": meta["uid"]}
        job.setdefault("status", {})["active"] = 1
        job["status"]["startTime"] = now()
        self.put({
            "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-{suffix}", "namespace": meta["namespace"],
                         "labels": labels,
                         "annotations": dict(meta.get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                                              "name": meta["name"], "uid": meta["uid"],
                                              "controller": True}]},
            "spec": copy.deepcopy(template["spec"]),
            "status": {"phase": "Pending"},
        })

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
        with self.lock:
            named = name or ((body or {}).get("metadata") or {}).get("name") if verb == "POST" \
                else name
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

    def _answer(self, verb: str, kind: str, namespace: str, name: str | None, sub: str,
                query: dict[str, str], body: Any) -> tuple[int, Any]:
        key = (kind, namespace, name or "")
        if verb == "LIST":
            items = self.find(kind, namespace, query.get("labelSelector", ""))
            return 200, {"kind": f"{kind}List", "apiVersion": API_VERSIONS[kind],
                         "metadata": {"resourceVersion": str(len(self.requests))},
                         "items": items}
        if verb == "POST":
            meta = body.setdefault("metadata", {})
            meta["namespace"] = namespace
            if (kind, namespace, meta.get("name")) in self.objects:
                return 409, _status(409, "AlreadyExists",
                                    f'{kind.lower()}s "{meta.get("name")}" already exists')
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
            obj["metadata"]["resourceVersion"] = str(len(self.requests))
            return 200, obj
        if verb == "PUT":
            body["metadata"]["uid"] = obj["metadata"]["uid"]
            self.objects[key] = body
            return 200, body
        if verb == "DELETE":
            self.remove(kind, namespace, name or "")
            return 200, _status(200, "", "", "Success")
        return 405, _status(405, "MethodNotAllowed", verb)

    def _log(self, pod: dict[str, Any], query: dict[str, str]) -> tuple[int, Any]:
        """``pods/{name}/log`` as documented: ``container`` (required when the pod has
        more than one), ``tailLines`` (the last lines), ``limitBytes`` (at most this many
        bytes from the start of what is selected)."""
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or (containers[0] if len(containers) == 1 else "")
        meta = pod["metadata"]
        if not container:
            return 400, _status(400, "BadRequest", "a container name must be specified for "
                                f"pod {meta['name']}, choose one of: {containers}")
        if container not in containers:
            return 400, _status(400, "BadRequest", f"container {container} is not valid for "
                                f"pod {meta['name']}")
        text = self.logs.get((meta["namespace"], meta["name"], container), "")
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]):]) if int(query["tailLines"]) else ""
        if query.get("limitBytes"):
            text = text.encode()[:int(query["limitBytes"])].decode("utf-8", "replace")
        return 200, text

    def kubeconfig(self, url: str, folder: Path) -> Path:
        """A kubeconfig file pointing the client at ``url``."""
        path = folder / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path


def schema_check(obj: dict[str, Any]) -> None:
    """Validate ``obj`` strictly against the Kubernetes API's JSON schemas (generated from
    its OpenAPI document, as PyPI's kubernetes-validate ships them)."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def _status(code: int, reason: str, message: str, status: str = "Failure") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status,
            "message": message, "reason": reason, "code": code}


def _reply(handler: BaseHTTPRequestHandler, code: int, data: Any) -> None:
    payload = json.dumps(data).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
