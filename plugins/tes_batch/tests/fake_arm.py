"""A loopback stand-in for the Azure Resource Manager operations provisioning uses.

ARM cannot run here, so this serves, over HTTPS with a self-signed certificate (azure-core
sends bearer tokens only over TLS), what the ARM REST reference documents for:
resource groups (GET, PUT), storage accounts (name availability, GET, PUT as a long-running
operation polled at its ``Location``, listKeys), file shares (GET, PUT), Batch accounts
(name availability, GET, PUT as a long-running operation polled at its
``Azure-AsyncOperation`` then a final GET, listKeys); and an App Service style managed
identity endpoint (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``) over plain HTTP, as App
Service serves it, so the server's real ``DefaultAzureCredential`` gets its token here.

Faults, switched by attributes: names taken elsewhere, regions not allowed, a Batch
account quota, throttling (429 with ``Retry-After``), and an operation held in progress
until :meth:`FakeArm.release` (to stop a server mid-way).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_keyvault import TOKEN, self_signed_certificate
from tests.jsonhttp import JsonHandler, LocalServer

IDENTITY_HEADER = "fake-identity-header-" + uuid.uuid4().hex

_GROUP = r"/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)"
ROUTES = [
    ("group", re.compile(rf"^{_GROUP}$")),
    ("storage_names", re.compile(
        r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Storage/checkNameAvailability$")),
    ("storage", re.compile(
        rf"^{_GROUP}/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)$")),
    ("storage_keys", re.compile(
        rf"^{_GROUP}/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)/listKeys$")),
    ("share", re.compile(
        rf"^{_GROUP}/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)"
        r"/fileServices/default/shares/(?P<share>[^/]+)$")),
    ("batch_names", re.compile(
        r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Batch/locations/(?P<loc>[^/]+)"
        r"/checkNameAvailability$")),
    ("batch", re.compile(
        rf"^{_GROUP}/providers/Microsoft\.Batch/batchAccounts/(?P<name>[^/]+)$")),
    ("batch_keys", re.compile(
        rf"^{_GROUP}/providers/Microsoft\.Batch/batchAccounts/(?P<name>[^/]+)/listKeys$")),
    ("operation_status", re.compile(r"^/operations/(?P<op>[0-9a-f]+)$")),
]


ACCOUNT_QUOTAS: dict[str, Any] = {
    "dedicatedCoreQuota": 20, "lowPriorityCoreQuota": 100,
    "dedicatedCoreQuotaPerVMFamilyEnforced": True,
    "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": 20},
                                      {"name": "standardESv3Family", "coreQuota": 8}],
    "poolQuota": 100, "activeJobAndJobScheduleQuota": 300}
"""A Batch account's quota properties (Batch service mode), as ``GET`` of the account
returns them (BatchManagement.json, ``BatchAccountProperties``)."""


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _availability(taken: bool, message: str) -> tuple[int, Any, dict]:
    """A ``checkNameAvailability`` answer."""
    return 200, {"nameAvailable": not taken,
                 **({"reason": "AlreadyExists", "message": message} if taken else {})}, {}


class FakeArm:
    """The resources it holds, the faults to play, and every request it answered."""

    def __init__(self, folder: Path, regions: tuple[str, ...] = ("westeurope", "northeurope")
                 ) -> None:
        self.regions = set(regions)
        """Where resource groups and accounts may go (others: LocationNotAvailable...)."""
        self.groups: dict[str, dict[str, Any]] = {}
        self.storage: dict[str, dict[str, Any]] = {}
        self.shares: dict[tuple[str, str], dict[str, Any]] = {}
        self.batch: dict[str, dict[str, Any]] = {}
        self.taken_storage_names: set[str] = set()
        self.taken_batch_names: set[str] = set()
        self.batch_quota = 5
        """Batch accounts per region and subscription."""
        self.account_quotas: dict[str, Any] = dict(ACCOUNT_QUOTAS)
        """The quota properties of Batch accounts made from now on."""
        self.throttle = 0
        """How many of the next requests get 429 with ``Retry-After: 1``."""
        self.throttled = 0
        self.polls = 1
        """How many times an operation answers "in progress" before it ends."""
        self.retry_after = "0"
        """The ``Retry-After`` of "in progress" answers (0: poll again now)."""
        self.held = threading.Event()
        """While set, Batch account operations stay in progress."""
        self.held_polls = 0
        self.requests: list[tuple[str, str]] = []
        self.tokens_issued = 0
        self._operations: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        arm = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                arm._handle(self, "GET")

            def do_PUT(self) -> None:  # noqa: N802
                arm._handle(self, "PUT")

            def do_POST(self) -> None:  # noqa: N802
                arm._handle(self, "POST")

        class IdentityHandler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                    self.reply(401, {"error": "unauthorized"})
                    return
                arm.tokens_issued += 1
                self.reply(200, {"access_token": TOKEN, "token_type": "Bearer",
                                 "expires_on": str(int(time.time()) + 3600),
                                 "resource": query.get("resource", [""])[0]})

        self.cert_file, key_file = self_signed_certificate(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self.http = LocalServer(Handler, tls=context)
        self.url = f"https://localhost:{self.http.port}"
        self.identity = LocalServer(IdentityHandler)

    # -- the switches -------------------------------------------------------------------

    def hold(self) -> None:
        """Keep Batch account operations in progress until :meth:`release`."""
        self.held.set()

    def release(self) -> None:
        """Let held operations end."""
        self.held.clear()

    def add_batch_account(self, subscription: str, group: str, name: str,
                          location: str = "westeurope", **quotas: Any) -> str:
        """Put a Batch account (and its group) in place, with ``quotas`` over
        :attr:`account_quotas` (``dedicatedCoreQuota=...``); returns its resource id."""
        self.groups.setdefault(group.lower(), {
            "id": self._base(subscription, group), "name": group, "location": location,
            "type": "Microsoft.Resources/resourceGroups",
            "properties": {"provisioningState": "Succeeded"}})
        resource_id = (f"{self._base(subscription, group)}/providers/Microsoft.Batch/"
                       f"batchAccounts/{name}")
        self.batch[name] = {"rg": group.lower(), "keys": (uuid.uuid4().hex, uuid.uuid4().hex),
                            "body": {"id": resource_id, "name": name, "location": location,
                                     "type": "Microsoft.Batch/batchAccounts",
                                     "properties": {
                                         "accountEndpoint": f"{name}.{location}.batch.azure.com",
                                         "provisioningState": "Succeeded",
                                         "poolAllocationMode": "BatchService",
                                         **self.account_quotas, **quotas}}}
        return resource_id

    def identity_env(self) -> dict[str, str]:
        """What makes ``DefaultAzureCredential`` ask this fake's managed identity."""
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.identity.port}/msi/token",
                "IDENTITY_HEADER": IDENTITY_HEADER}

    def close(self) -> None:
        """Stop serving."""
        self.http.close()
        self.identity.close()

    # -- serving ------------------------------------------------------------------------

    def _handle(self, handler: JsonHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"null") if length else None
        with self._lock:
            self.requests.append((method, split.path))
            if self.throttle > 0:
                self.throttle -= 1
                self.throttled += 1
                handler.reply(429, _error("TooManyRequests", "Too many requests; retry later."),
                              {"Retry-After": "1"})
                return
        if not parse_qs(split.query).get("api-version"):
            handler.reply(400, _error("MissingApiVersionParameter",
                                      "The api-version query parameter is required."))
            return
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            handler.reply(401, _error("AuthenticationFailed",
                                      "Authentication failed. The 'Authorization' header is "
                                      "missing or invalid."))
            return
        for name, pattern in ROUTES:
            match = pattern.match(split.path)
            if match:
                with self._lock:
                    status, answer, headers = getattr(self, f"_{name}")(
                        method, match.groupdict(), body)
                if status == 202 and not answer:
                    handler.send_response(202)
                    for key, value in headers.items():
                        handler.send_header(key, value)
                    handler.send_header("Content-Length", "0")
                    handler.end_headers()
                else:
                    handler.reply(status, answer, headers)
                return
        handler.reply(404, _error("InvalidResourceType", f"no route for {split.path}"))

    def _base(self, sub: str, rg: str) -> str:
        return f"/subscriptions/{sub}/resourceGroups/{rg}"

    def _region_refused(self, location: str, kind: str) -> tuple[int, Any, dict] | None:
        if location in self.regions:
            return None
        return 400, _error(
            "LocationNotAvailableForResourceType",
            f"The provided location '{location}' is not available for resource type "
            f"'{kind}'. List of available regions for the resource type is "
            f"'{','.join(sorted(self.regions))}'."), {}

    def _group(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        found = self.groups.get(p["rg"].lower())
        if method == "GET":
            if found is None:
                return 404, _error("ResourceGroupNotFound",
                                   f"Resource group '{p['rg']}' could not be found."), {}
            return 200, found, {}
        location = body["location"]
        if found is not None and found["location"] != location:
            return 409, _error("InvalidResourceGroupLocation",
                               f"Invalid resource group location '{location}'. The Resource "
                               f"group already exists in location '{found['location']}'."), {}
        refused = self._region_refused(location, "Microsoft.Resources/resourceGroups")
        if refused:
            return refused
        group = {"id": self._base(p["sub"], p["rg"]), "name": p["rg"], "location": location,
                 "type": "Microsoft.Resources/resourceGroups", "tags": body.get("tags", {}),
                 "properties": {"provisioningState": "Succeeded"}}
        self.groups[p["rg"].lower()] = group
        return (200 if found else 201), group, {}

    def _missing_group(self, p: dict[str, str]) -> tuple[int, Any, dict] | None:
        if p["rg"].lower() in self.groups:
            return None
        return 404, _error("ResourceGroupNotFound",
                           f"Resource group '{p['rg']}' could not be found."), {}

    def _storage_names(self, method: str, p: dict[str, str], body: Any
                       ) -> tuple[int, Any, dict]:
        name = body["name"]
        return _availability(name in self.storage or name in self.taken_storage_names,
                             f"The storage account named {name} is already taken.")

    def _storage(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        missing = self._missing_group(p)
        if missing:
            return missing
        found = self.storage.get(p["name"])
        if method == "GET":
            if found is None or found["rg"] != p["rg"].lower():
                return 404, _error("ResourceNotFound",
                                   f"The Resource 'Microsoft.Storage/storageAccounts/"
                                   f"{p['name']}' under resource group '{p['rg']}' was not "
                                   "found."), {}
            return 200, found["body"], {}
        refused = self._region_refused(body["location"], "Microsoft.Storage/storageAccounts")
        if refused:
            return refused
        name = p["name"]
        account = {
            "id": f"{self._base(p['sub'], p['rg'])}/providers/Microsoft.Storage/"
                  f"storageAccounts/{name}",
            "name": name, "type": "Microsoft.Storage/storageAccounts",
            "location": body["location"], "kind": body["kind"],
            "sku": {"name": body["sku"]["name"], "tier": "Standard"},
            "tags": body.get("tags", {}),
            "properties": {"provisioningState": "Creating",
                           "primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/",
                                                "file": f"https://{name}.file.core.windows.net/"},
                           **body.get("properties", {})},
        }
        self.storage[name] = {"rg": p["rg"].lower(), "body": account,
                              "keys": [uuid.uuid4().hex, uuid.uuid4().hex]}
        operation = self._operation("storage", account)
        return 202, None, {"Location": f"{self.url}/operations/{operation}?api-version=x",
                           "Retry-After": self.retry_after}

    def _storage_keys(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        found = self.storage.get(p["name"])
        if found is None:
            return 404, _error("ResourceNotFound", "no such storage account"), {}
        return 200, {"keys": [{"keyName": f"key{i + 1}", "value": key, "permissions": "FULL"}
                              for i, key in enumerate(found["keys"])]}, {}

    def _share(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        if p["name"] not in self.storage:
            return 404, _error("ResourceNotFound", "no such storage account"), {}
        key = (p["name"], p["share"])
        if method == "GET":
            if key not in self.shares:
                return 404, _error("ShareNotFound", "The specified share does not exist."), {}
            return 200, self.shares[key], {}
        share = {"id": f"{self.storage[p['name']]['body']['id']}/fileServices/default/shares/"
                       f"{p['share']}",
                 "name": p["share"], "type": "Microsoft.Storage/storageAccounts/fileServices/"
                 "shares", "properties": dict(body.get("properties", {}))}
        created = key not in self.shares
        self.shares[key] = share
        return (201 if created else 200), share, {}

    def _batch_names(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        name = body["name"]
        return _availability(name in self.batch or name in self.taken_batch_names,
                             f"An account named '{name}' is already in use.")

    def _batch(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        missing = self._missing_group(p)
        if missing:
            return missing
        found = self.batch.get(p["name"])
        if method == "GET":
            if found is None or found["rg"] != p["rg"].lower():
                return 404, _error("ResourceNotFound",
                                   f"The Resource 'Microsoft.Batch/batchAccounts/{p['name']}' "
                                   f"under resource group '{p['rg']}' was not found."), {}
            return 200, found["body"], {}
        location = body["location"]
        refused = self._region_refused(location, "Microsoft.Batch/batchAccounts")
        if refused:
            return refused
        storage_id = body["properties"]["autoStorage"]["storageAccountId"]
        if not any(s["body"]["id"] == storage_id for s in self.storage.values()):
            return 400, _error("InvalidRequestBody",
                               f"The specified storage account {storage_id} was not found."), {}
        name = p["name"]
        account = {
            "id": f"{self._base(p['sub'], p['rg'])}/providers/Microsoft.Batch/"
                  f"batchAccounts/{name}",
            "name": name, "type": "Microsoft.Batch/batchAccounts", "location": location,
            "tags": body.get("tags", {}),
            "properties": {"accountEndpoint": f"{name}.{location}.batch.azure.com",
                           "provisioningState": "Creating",
                           "poolAllocationMode": body["properties"].get("poolAllocationMode"),
                           **self.account_quotas,
                           "autoStorage": {"storageAccountId": storage_id,
                                           "lastKeySync": "2026-12-03T06:00:00Z"}},
        }
        in_region = sum(1 for b in self.batch.values()
                        if b["body"]["location"] == location and b is not found)
        failure = None
        if found is None and in_region >= self.batch_quota:
            failure = _error("AccountQuotaExceeded",
                             f"The regional Batch account quota ({self.batch_quota}) for the "
                             f"specified subscription has been reached in {location}.")["error"]
        else:
            self.batch[name] = {"rg": p["rg"].lower(), "body": account,
                                "keys": (uuid.uuid4().hex, uuid.uuid4().hex)}
        operation = self._operation("batch", account, failure)
        return 202, None, {"Azure-AsyncOperation":
                           f"{self.url}/operations/{operation}?api-version=x",
                           "Retry-After": self.retry_after}

    def _batch_keys(self, method: str, p: dict[str, str], body: Any) -> tuple[int, Any, dict]:
        found = self.batch.get(p["name"])
        if found is None:
            return 404, _error("ResourceNotFound", "no such Batch account"), {}
        return 200, {"accountName": p["name"], "primary": found["keys"][0],
                     "secondary": found["keys"][1]}, {}

    def _operation(self, kind: str, resource: dict[str, Any],
                   failure: dict[str, Any] | None = None) -> str:
        operation = uuid.uuid4().hex
        self._operations[operation] = {"kind": kind, "resource": resource,
                                       "polls": self.polls, "failure": failure}
        return operation

    def _operation_status(self, method: str, p: dict[str, str], body: Any
                          ) -> tuple[int, Any, dict]:
        op = self._operations.get(p["op"])
        if op is None:
            return 404, _error("OperationNotFound", "no such operation"), {}
        status, answer, headers = self._operation_answer(op)
        if status == 202:
            headers = {**headers, "Location": f"{self.url}/operations/{p['op']}?api-version=x"}
        return status, answer, headers

    def _operation_answer(self, op: dict[str, Any]) -> tuple[int, Any, dict]:
        pending = op["polls"] > 0 or (op["kind"] == "batch" and self.held.is_set())
        if op["kind"] == "storage":  # Location polling: 202 until done, then the resource
            if pending:
                op["polls"] -= 1
                return 202, None, {"Retry-After": self.retry_after}
            op["resource"]["properties"]["provisioningState"] = "Succeeded"
            return 200, op["resource"], {}
        if pending:  # Azure-AsyncOperation polling: a status document
            if op["polls"] > 0:
                op["polls"] -= 1
            else:
                self.held_polls += 1
            return 200, {"status": "InProgress"}, {"Retry-After": self.retry_after}
        if op["failure"] is not None:
            return 200, {"status": "Failed", "error": op["failure"]}, {}
        op["resource"]["properties"]["provisioningState"] = "Succeeded"
        return 200, {"status": "Succeeded"}, {}

