"""A private registry on loopback for the runner's login tests: the Docker registry API v2
with basic authentication (what ``docker login`` and ``docker pull`` speak), serving one
image built from a root file system tar, plus the two Azure endpoints a managed identity's
login goes through, as documented: the instance metadata service's token endpoint
(``GET /metadata/identity/oauth2/token`` with ``Metadata: true``) and ACR's
``POST /oauth2/exchange`` (``grant_type=access_token``, ``service``, ``access_token`` in,
``{"refresh_token": ...}`` out).

Docker treats 127.0.0.0/8 as an insecure registry: it uses plain HTTP there, and over
HTTPS ignores that the certificate is self-signed (so ``tls`` works too).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACR_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """``users`` (name -> password) may pull ``repository``:any tag; the identity
    ``identity`` gets an AAD token from IMDS that the exchange turns into a refresh token,
    which logs in as :data:`ACR_TOKEN_USER`. Every request is kept in :attr:`requests`
    (method, path, the user of its basic authorization, its form)."""

    def __init__(self, rootfs: bytes, repository: str, users: dict[str, str],
                 identity: str = "", tls: ssl.SSLContext | None = None) -> None:
        self.users = dict(users)
        self.repository = repository
        self.identity = identity
        self.aad_tokens: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(rootfs)]},
        }).encode()
        self.blobs = {_digest(rootfs): rootfs, _digest(config): config}
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": _digest(rootfs), "size": len(rootfs)}],
        }).encode()
        fake = self

        class Handler(_Handler):
            registry = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, entry: dict[str, Any]) -> None:
        """Keep one request."""
        with self._lock:
            self.requests.append(entry)

    def seen(self, path_start: str) -> list[dict[str, Any]]:
        """The requests whose path starts with ``path_start``."""
        with self._lock:
            return [r for r in self.requests if r["path"].startswith(path_start)]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, body: Any, **headers: str) -> None:
        self._send(status, json.dumps(body).encode(),
                   {"Content-Type": "application/json", **headers})

    def _user(self) -> str | None:
        """The user of a valid basic authorization, else ``None``."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.registry.users.get(user) == password else None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        user = self._user()
        self.registry.record({"method": self.command, "path": url.path, "user": user,
                              "query": dict(urllib.parse.parse_qsl(url.query)),
                              "metadata": self.headers.get("Metadata")})
        if url.path == "/metadata/identity/oauth2/token":
            self._imds(dict(urllib.parse.parse_qsl(url.query)))
            return
        if not url.path.startswith("/v2/"):
            self._json(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
            return
        if user is None:
            self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "login"}]},
                       **{"WWW-Authenticate": 'Basic realm="fake"'})
            return
        prefix = f"/v2/{self.registry.repository}/"
        if url.path == "/v2/":
            self._json(200, {})
        elif url.path.startswith(prefix + "manifests/"):
            body = self.registry.manifest
            self._send(200, body, {"Content-Type": OCI_MANIFEST,
                                   "Docker-Content-Digest": _digest(body)}, head)
        elif url.path.startswith(prefix + "blobs/") and (
                blob := self.registry.blobs.get(url.path[len(prefix + "blobs/"):])):
            self._send(200, blob, {"Content-Type": "application/octet-stream",
                                   "Docker-Content-Digest": _digest(blob)}, head)
        else:
            self._json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "unknown"}]})

    def _imds(self, query: dict[str, str]) -> None:
        """IMDS: a token for the identity named by ``msi_res_id`` (``Metadata: true``)."""
        if self.headers.get("Metadata") != "true":
            self._json(400, {"error": "invalid_request",
                             "error_description": "Required metadata header not specified"})
        elif query.get("msi_res_id") != self.registry.identity or query.get(
                "resource") != "https://management.azure.com/":
            self._json(400, {"error": "invalid_request",
                             "error_description": "Identity not found"})
        else:
            token = "aad-" + secrets.token_hex(16)
            self.registry.aad_tokens.add(token)
            self._json(200, {"access_token": token, "token_type": "Bearer",
                             "resource": query["resource"], "expires_in": "86399"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        self.registry.record({"method": "POST", "path": self.path, "user": None,
                              "form": form, "content_type": self.headers.get("Content-Type")})
        if self.path != "/oauth2/exchange":
            self._json(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
        elif (form.get("grant_type") != "access_token"
              or form.get("service") != self.registry.host
              or form.get("access_token") not in self.registry.aad_tokens):
            self._json(401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "the access token is not valid"}]})
        else:
            refresh = "acr-" + secrets.token_hex(16)
            self.registry.users[ACR_TOKEN_USER] = refresh
            self._json(200, {"refresh_token": refresh})
