"""A private container registry the pools log in to (``TES_BATCH_REGISTRY_*``): its server
and a user name with a password, or a managed identity. The pools' container configuration
lists it (``containerConfiguration.containerRegistries``: the images Batch pulls), and the
runner logs the node's Docker in before pulling an executor image of it: ``task.json``'s
``registry`` says how (:meth:`RegistryLogin.runner_entry`), never with the password, which
only the pool's start task carries and writes to :data:`PASSWORD_FILE` on each node."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from azure.batch import models
from tes_core.config import ConfigError, PluginSettings
from tes_core.telemetry.redact import register_secret

PASSWORD_VARIABLE = "TES_REGISTRY_PASSWORD"
"""The start task's environment setting holding the password (the pool's only copy of it
besides ``containerRegistries``)."""
PASSWORD_FILE = "$AZ_BATCH_NODE_SHARED_DIR/tes-registry/password"
"""Where the start task writes the password on each node (mode 0600, a 0700 folder); the
runner reads it there (it expands the leading variable)."""

_SERVER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?")
_IDENTITY = re.compile(
    r"/subscriptions/[^/\s]+/resourceGroups/[^/\s]+/providers/"
    r"Microsoft\.ManagedIdentity/userAssignedIdentities/[^/\s]+", re.IGNORECASE)


@dataclass(frozen=True)
class RegistryLogin:
    """How the pools' nodes log in to one private registry."""

    server: str
    """Host name (and port) of the registry, e.g. ``myregistry.azurecr.io``."""
    username: str = ""
    password: str = field(default="", repr=False)
    identity: str = ""
    """ARM resource id of a user-assigned managed identity of the pool (instead of a user
    name and password)."""

    def key(self) -> dict[str, str]:
        """What tells pools apart (never the password: it is not part of a pool id)."""
        return {"server": self.server, "username": self.username, "identity": self.identity}

    def reference(self) -> models.ContainerRegistryReference:
        """The registry as the pool's container configuration lists it."""
        if self.identity:
            return models.ContainerRegistryReference(
                registry_server=self.server,
                identity_reference=models.BatchNodeIdentityReference(resource_id=self.identity))
        return models.ContainerRegistryReference(
            registry_server=self.server, username=self.username, password=self.password)

    def start_environment(self) -> list[models.EnvironmentSetting]:
        """The start task's settings for this login: the password, which it writes to
        :data:`PASSWORD_FILE` (nothing for a managed identity)."""
        if not self.password:
            return []
        return [models.EnvironmentSetting(name=PASSWORD_VARIABLE, value=self.password)]

    def runner_entry(self) -> dict[str, str]:
        """``task.json``'s ``registry``: the server and the user name with the password's
        file on the node, or the identity (the runner reads the contract, runner/README.md)."""
        if self.identity:
            return {"server": self.server, "identity": self.identity}
        return {"server": self.server, "username": self.username, "password_file": PASSWORD_FILE}


def registry_from_settings(plugin: PluginSettings) -> RegistryLogin | None:
    """The registry of ``TES_BATCH_REGISTRY_SERVER`` / ``_USERNAME`` / ``_PASSWORD`` /
    ``_IDENTITY``; ``None`` when none is set; :class:`ConfigError` naming a bad one."""
    server = plugin.text("registry_server")
    username = plugin.text("registry_username")
    password = plugin.text("registry_password")
    identity = plugin.text("registry_identity")
    if password:
        register_secret(password)  # masked in every log line, whatever logs it
    if not server:
        if username or password or identity:
            raise ConfigError("TES_BATCH_REGISTRY_SERVER is needed with the other "
                              "TES_BATCH_REGISTRY_* settings")
        return None
    if not _SERVER.fullmatch(server):
        raise ConfigError(f"TES_BATCH_REGISTRY_SERVER={server!r} is not a host name[:port] "
                          "(no scheme, no path)")
    if identity:
        if username or password:
            raise ConfigError("TES_BATCH_REGISTRY_IDENTITY excludes TES_BATCH_REGISTRY_USERNAME "
                              "and TES_BATCH_REGISTRY_PASSWORD: set one way to log in")
        if not _IDENTITY.fullmatch(identity):
            raise ConfigError(f"TES_BATCH_REGISTRY_IDENTITY={identity!r} is not the resource id "
                              "of a user-assigned managed identity")
        return RegistryLogin(server=server, identity=identity)
    if not username or not password:
        raise ConfigError("TES_BATCH_REGISTRY_SERVER needs TES_BATCH_REGISTRY_USERNAME and "
                          "TES_BATCH_REGISTRY_PASSWORD, or TES_BATCH_REGISTRY_IDENTITY")
    return RegistryLogin(server=server, username=username, password=password)
