"""Settings, read once from ``TES_*`` environment variables.

Every setting has the same name in the embedded and the production mode; the
README's table lists them all. ``Settings.from_env()`` is the only place that
reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tes-server"


@dataclass(frozen=True)
class Settings:
    """The server's configuration. Field ``foo_bar`` is read from ``TES_FOO_BAR``."""

    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``<data_dir>/tes.sqlite3``."""
    broker_url: str = ""
    """``redis://...`` for a shared Redis broker; empty means in-memory, in-process."""
    broker_namespace: str = "tes"
    """Prefix of the broker's Redis keys, so several servers can share one Redis."""
    backend: str = "local"
    disabled_plugins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    cors_origins: tuple[str, ...] = ("*",)
    worker_threads: int = 8
    reconcile_interval: float = 10.0
    """Seconds between reconcile passes (crash recovery, backend polling)."""
    heartbeat_interval: float = 5.0
    get_refresh_timeout: float = 2.0
    """Upper bound, seconds, on refreshing an active task from its backend during GET."""
    local_runtime: str = "auto"
    """``auto``, ``docker``, ``podman`` or ``bubblewrap``."""
    local_max_tasks: int = 4
    local_network: str = "none"
    local_allowed_networks: tuple[str, ...] = ("none",)
    local_keep_workdirs: bool = False
    service_name: str = "tes-core"
    service_id: str = "org.ga4gh.tes.core"
    organization_name: str = "tes-core"
    organization_url: str = "https://github.com/"
    contact_url: str = ""
    documentation_url: str = ""
    environment: str = ""
    storage: tuple[str, ...] = ()
    """Storage locations advertised in service-info; defaults to this machine's data folder."""

    @property
    def database(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'tes.sqlite3'}"

    @property
    def workdirs(self) -> Path:
        """Where the local backend keeps each task's working folder."""
        return self.data_dir / "tasks"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``TES_*`` variables, then apply ``overrides`` (by field name)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(f"TES_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f"TES_{f.name.upper()}", raw, f.default, f.type)
        settings = replace(cls(), **values)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])  # type: ignore[arg-type]
        return replace(settings, **overrides)


def _parse(name: str, raw: str, default: object, type_name: object) -> object:
    kind = str(type_name)
    try:
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
