"""Settings, read once from ``TES_*`` environment variables.

Every setting has the same name in the embedded and the production mode; the
README's table lists them all. ``Settings.from_env()`` is the only place that
reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .telemetry.redact import register_secret


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


Duration = float
"""Seconds; in the environment a number with a unit (:func:`parse_duration`)."""

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(name: str, raw: str) -> float | None:
    """Seconds in ``raw`` (``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1d12h``), or
    ``None`` when it is empty; :class:`ConfigError` naming ``name`` otherwise."""
    text = raw.strip().lower().replace(" ", "")
    if not text:
        return None
    parts = _DURATION.findall(text)
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if "".join(number + unit for number, unit in parts) != text or seconds <= 0:
        raise ConfigError(
            f"{name}={raw!r} is not a duration above 0: write a number with a unit, e.g. "
            "30d, 12h, 90m, 45s or 1d12h (leave it empty to keep finished tasks forever)"
        )
    return seconds


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "tes-server"


@dataclass(frozen=True)
class Settings:
    """The server's configuration. Field ``foo_bar`` is read from ``TES_FOO_BAR``."""

    data_dir: Path = field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    """Address ``tes-server serve`` listens on (``0.0.0.0``: every interface)."""
    port: int = 8000
    """Port ``tes-server serve`` listens on; 0 picks a free one."""
    http_threads: int = 16
    """Threads ``tes-server serve`` answers HTTP requests with."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``<data_dir>/tes.sqlite3``."""
    broker_url: str = ""
    """``redis://...`` for a shared Redis broker; empty means in-memory, in-process."""
    broker_namespace: str = "tes"
    """Prefix of the broker's Redis keys, so several servers can share one Redis."""
    broker_timeout: float = 2.0
    """Seconds to connect to or wait on Redis before a send gives up (the task stays stored
    and the reconcile loop sends it again)."""
    backend: str = "local"
    disabled_plugins: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    # -- bounds on what one request may ask for (tes_core/schemas/limits.py) ------------
    max_executors: int = 1000
    """Executors per task."""
    max_inputs: int = 10000
    """Inputs per task (a scatter-gather step may read thousands of files)."""
    max_outputs: int = 10000
    """Outputs per task."""
    max_volumes: int = 1000
    """Volumes per task."""
    max_tags: int = 1000
    """Tags per task (each tag also has fixed bounds: key 255 characters, key and value
    together 2000 bytes)."""
    max_items: int = 10000
    """Entries of any other list or map in a task: command arguments, env, zones,
    backend_parameters."""
    max_text_chars: int = 8192
    """Characters of a name, path, URL, image, zone, or env or backend_parameters key."""
    max_arg_chars: int = 131072
    """Characters of a free-text value: a command argument, an env value, a description
    (Linux refuses a single argument or env entry over 128 KiB anyway)."""
    max_content_bytes: int = 1024 * 1024
    """UTF-8 bytes of one input's inline ``content`` (the spec asks for at least 128 KiB)."""
    max_cpu_cores: int = 4096
    """Largest ``resources.cpu_cores``."""
    max_ram_gb: float = 1048576.0
    """Largest ``resources.ram_gb`` (1 PiB)."""
    max_disk_gb: float = 1048576.0
    """Largest ``resources.disk_gb`` (1 PiB)."""
    list_max_bytes: int = 4 * 1024 * 1024
    """Stored bytes of tasks in one BASIC or FULL listing page: a smaller page (with
    ``next_page_token``) when ``page_size`` tasks would be more; always at least one task."""
    count_limit: int = 10_000
    """``GET /task-counts`` counts up to this many tasks of each state (with a name or tag
    filter: this many matching tasks), then says "at least", so the dashboard's counts cost
    the same over any number of tasks."""
    output_tail_max: int = 64 * 1024
    """Most bytes ``GET /tasks/{id}/executors/{index}/stdout`` (and ``stderr``) answers: a
    larger ``tail`` is cut to this."""
    output_live_max: int = 4 * 1024 * 1024
    """Most bytes kept on disk of the live copy of each executor output stream the task
    names no file for (its end, in two files of half this; at least 2). A file the task
    names gets every byte."""
    # -- end of request bounds -----------------------------------------------------------
    dashboard: bool = True
    """Serve the web dashboard at ``/`` (off: ``/`` leads to the API explorer)."""
    dashboard_oidc_client_id: str = ""
    """With authentication on: the OAuth client id (a public client, with this server's
    ``/`` as a redirect URI) the dashboard signs users in with, by the authorization code
    flow with PKCE at ``TES_AUTH_ISSUER``; empty: users paste a token."""
    dashboard_oidc_scope: str = "openid"
    """Scopes the dashboard asks for: include the one that makes the identity provider
    issue a token for this API (e.g. ``api://<app id>/.default`` on Microsoft Entra ID)."""
    cors_origins: tuple[str, ...] = ()
    """Origins a browser app may call the API from (``*``: any); none by default."""
    worker_threads: int = 8
    reconcile_interval: float = 10.0
    """Seconds between reconcile passes (crash recovery, backend polling)."""
    reconcile_batch_size: int = 500
    """Active tasks read, polled and written per batch of a reconcile pass (1 to 5000)."""
    reconcile_lock_ttl: float = 60.0
    """Seconds the reconcile lock lasts unless renewed (after each batch): a dead worker's
    lock frees itself after this long."""
    retention: Duration | None = None
    """How long finished tasks (and their folders) are kept after they end; ``None`` (unset
    or empty): forever. Written ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or ``1d12h``."""
    retention_batch_size: int = 500
    """Finished tasks one reconcile pass removes at most (1 to 5000), so a pass never holds
    the database long; a backlog goes in later passes."""
    heartbeat_interval: float = 5.0
    shutdown_grace: float = 10.0
    """Seconds a process stopping on SIGTERM (a restart, an upgrade, a node drain) has to
    hand its work over before it exits anyway; a second SIGTERM or SIGINT exits at once."""
    database_retry_timeout: float = 300.0
    """Seconds a worker keeps retrying a task's report while the database is unreachable."""
    get_refresh_timeout: float = 2.0
    """Upper bound, seconds, on refreshing an active task from its backend during GET."""
    local_runtime: str = "auto"
    """``auto``, ``docker``, ``podman`` or ``bubblewrap``."""
    local_start_without_runtime: bool = False
    """Start even when no container runtime is usable: tasks then end in SYSTEM_ERROR saying
    why, and ``/readyz`` answers 503, until one works. Off: start-up stops with the reason."""
    local_max_tasks: int = 4
    local_wait_explain_after: float = 2.0
    """Seconds a task may wait (QUEUED or INITIALIZING) on the local backend before its
    logs say why (a busy slot, an image pull, inputs being staged)."""
    local_network: str = "none"
    local_allowed_networks: tuple[str, ...] = ("none",)
    local_keep_workdirs: bool = False
    local_pids_limit: int = 4096
    """Most processes (threads included) one executor may run; 0: no limit. Docker and
    podman: ``--pids-limit``; bubblewrap: ``RLIMIT_NPROC`` of the sandbox user."""
    local_sandbox_uid: int = 65534
    """Host user id bubblewrap executors run as when the server runs as root."""
    local_sandbox_gid: int = 65534
    """Host group id bubblewrap executors run as when the server runs as root."""
    local_cache_dir: str = ""
    """Node-local content cache of downloaded inputs; empty means ``<data_dir>/cache``."""
    local_cache_max_bytes: int = 20 * 1024**3
    """Bound of the input cache (least recently used go first); 0 turns the cache off."""
    local_transfer_parallel: int = 8
    """Input and output files a task transfers at once."""
    allowed_local_dirs: tuple[str, ...] | None = None
    """Host folders that local-path and ``file://`` inputs and outputs may name (comma
    list; resolved to real paths). Unset: ``/tmp`` and the directory the server started in
    (unless ``/`` or the home directory) with auth off, nothing with auth on; empty:
    nothing. The data folder, cache and task folders are never reachable."""
    allowed_hosts: tuple[str, ...] = ()
    """Non-public hosts that http(s), FTP, S3 and Azure URLs may reach (comma list of
    names, ``*.domain``, IPs, CIDR networks, optionally ``:port``). Loopback, link-local,
    private and other non-public addresses are refused unless listed here."""
    service_name: str = "tes-core"
    service_id: str = "org.ga4gh.tes.core"
    organization_name: str = "tes-core"
    organization_url: str = "https://github.com/"
    contact_url: str = ""
    documentation_url: str = ""
    environment: str = ""
    storage: tuple[str, ...] = ()
    """Storage locations advertised in service-info; defaults to this machine's data folder."""
    storage_connection_string: str = field(default="", repr=False)
    """Azure Storage connection string (account key or SAS) of the server's blob storage."""
    storage_connection_strings: Mapping[str, str] = field(
        default_factory=dict, hash=False, repr=False,
        metadata={"variable": "TES_STORAGE_CONNECTION_STRING_<NAME>"},
    )
    """More storage accounts the server signs for: one connection string per variable
    ``TES_STORAGE_CONNECTION_STRING_<NAME>`` (any suffix, e.g. ``_REFS``), keyed by the
    variable's name; each may be a secret reference of its own."""
    storage_account_url: str = ""
    """``https://<account>.blob.core.windows.net``, or several separated by commas: storage
    accounts reached with DefaultAzureCredential (user-delegation SAS)."""
    auth_enabled: bool = False
    """Require OAuth 2.0 bearer tokens (JWTs) on the task endpoints."""
    auth_issuer: str = ""
    """The ``iss`` tokens must carry; its OpenID configuration gives the JWKS."""
    auth_audience: tuple[str, ...] = ()
    """Accepted ``aud`` values (any one of them)."""
    auth_jwks_url: str = ""
    """The issuer's JWKS; empty: discovered from ``<issuer>/.well-known/openid-configuration``."""
    auth_algorithms: tuple[str, ...] = ("RS256", "ES256")
    """Accepted signature algorithms; only asymmetric ones are allowed."""
    auth_leeway: float = 60.0
    """Seconds of clock skew allowed on ``exp`` and ``nbf``."""
    auth_owner_claim: str = "sub"
    auth_tenant_claim: str = "tid"
    auth_admin_claim: str = "roles"
    """Claim (a list or a space-separated string) that makes a caller an admin ..."""
    auth_admin_role: str = "TES.Admin"
    """... when it holds this value."""
    auth_jwks_cache_seconds: float = 3600.0
    """How long fetched signing keys are used before fetching them again."""
    auth_jwks_min_refresh: float = 30.0
    """Least seconds between two fetches caused by tokens naming an unknown key id."""
    events_max_clients: int = 0
    """Event streams (``GET /events``) one API process serves at once; each holds one HTTP
    thread while open. 0: half of ``TES_HTTP_THREADS``, so streams never take every thread.
    More get 503 with ``Retry-After`` (the ``tes`` client then polls)."""
    events_max_seconds: float = 300.0
    """Seconds one event stream stays open; the client reconnects with ``Last-Event-ID``
    (browsers' EventSource does so itself) and loses nothing."""
    events_keep_seconds: float = 3600.0
    """Seconds events are kept for ``Last-Event-ID`` resumes."""
    events_poll_interval: float = 0.5
    """Seconds between two reads of new events by an API process with listeners, when
    nothing wakes it earlier (a change made in this process, or Redis pub/sub with
    ``TES_BROKER_URL``)."""
    webhook_url: str = ""
    """Every task state change is POSTed there as signed JSON (empty: off)."""
    webhook_secret: str = field(default="", repr=False)
    """Key of the webhooks' HMAC-SHA256 signature (``X-TES-Signature``)."""
    webhook_task_tag: str = ""
    """A task tag whose value is a further webhook URL for that task's changes (empty:
    tasks cannot name one). Such URLs obey ``TES_ALLOWED_HOSTS``: no loopback or private
    address unless allowed."""
    webhook_retries: int = 5
    """Attempts after the first one, 1 s, 2 s, 4 s ... apart."""
    webhook_timeout: float = 5.0
    """Seconds one webhook POST may take."""
    worker_metrics_port: int = 0
    """``tes-server worker`` serves its own ``/metrics`` on this port (all interfaces); 0: off."""
    applicationinsights_connection_string: str = field(default="", repr=False)
    """Azure Monitor: export traces and logs there (also read from the standard
    ``APPLICATIONINSIGHTS_CONNECTION_STRING``)."""
    plugin_settings: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    """Every ``TES_*`` variable the core does not know, keyed lower-case without ``TES_``,
    for plugins (read them with :meth:`plugin_setting`)."""

    @property
    def database(self) -> str:
        """The effective database URL."""
        return self.database_url or f"sqlite:///{self.data_dir / 'tes.sqlite3'}"

    @property
    def workdirs(self) -> Path:
        """Where the local backend keeps each task's working folder."""
        return self.data_dir / "tasks"

    def plugin_setting(self, name: str, default: str = "") -> str:
        """A plugin's own setting, e.g. ``plugin_setting("cromwell_container", "cromwell")``
        reads ``TES_CROMWELL_CONTAINER``; ``default`` when it is not set."""
        key = name.lower()
        return self.plugin_settings.get(key[4:] if key.startswith("tes_") else key, default)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``TES_*`` variables, then apply ``overrides`` (by field name).

        A ``TES_*`` value may be a secret reference such as ``@Microsoft.KeyVault(...)``
        (see :mod:`tes_core.secret_references`), resolved here once by the plugin that
        knows it; one that cannot be resolved raises :class:`ConfigError`.
        """
        from .secret_references import resolve_secret_references

        environ = resolve_secret_references(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        known = {f"TES_{f.name.upper()}" for f in fields(cls)}
        for f in fields(cls):
            if f.name in _PREFIXED:
                continue
            raw = environ.get(f"TES_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f"TES_{f.name.upper()}", raw, f.default, f.type)
        if "applicationinsights_connection_string" not in values:
            values["applicationinsights_connection_string"] = environ.get(
                "APPLICATIONINSIGHTS_CONNECTION_STRING", ""
            )
        values["storage_connection_strings"] = {
            name: value.strip()
            for name, value in sorted(environ.items())
            if name.startswith(_MORE_CONNECTION_STRINGS) and value.strip()
        }
        values["plugin_settings"] = {
            name[4:].lower(): value
            for name, value in environ.items()
            if name.startswith("TES_") and name not in known
            and not name.startswith(_MORE_CONNECTION_STRINGS)
        }
        settings = replace(cls(), **values)
        for name, value in settings.plugin_settings.items():
            if _SECRET_NAME.search(name) and not value.startswith("/"):
                register_secret(value)  # a plugin's key or password (a file path is not)
        for f in fields(cls):
            value = getattr(settings, f.name)
            if f.repr:
                continue
            # Declared secrets: masked in every log line.
            for secret in value.values() if f.name in _SECRET_MAPPINGS else (value,):
                if isinstance(secret, str) and secret:
                    register_secret(secret)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])  # type: ignore[arg-type]
        return replace(settings, **overrides)


_MORE_CONNECTION_STRINGS = "TES_STORAGE_CONNECTION_STRING_"
"""Prefix of the variables that add storage accounts (``storage_connection_strings``)."""
_PREFIXED = frozenset({"plugin_settings", "storage_connection_strings"})
"""Fields read from a family of variables, not from ``TES_<FIELD>``."""
_SECRET_MAPPINGS = frozenset({"storage_connection_strings"})
"""Mapping fields whose values are secrets."""
_SECRET_NAME = re.compile(r"_(?:key|password|passwd|secret|token|credentials?|connection_string)$")
"""Plugin settings (``TES_<PLUGIN>_...``) whose names end in a secret's name: their values
(but a file path) are masked in every log line, whether or not the plugin registers them."""


@dataclass(frozen=True)
class PluginSettings:
    """One plugin's ``TES_<PREFIX>_*`` variables, read so that every error names the variable
    (``PluginSettings(settings, "slurm").number("max_attempts", "3", int, 1)`` reads
    ``TES_SLURM_MAX_ATTEMPTS``)."""

    settings: Settings
    prefix: str

    def variable(self, name: str) -> str:
        """The environment variable of setting ``name``."""
        return f"TES_{self.prefix.upper()}_{name.upper()}"

    def text(self, name: str, default: str = "") -> str:
        """The setting's value, stripped; ``default`` when it is not set."""
        return self.settings.plugin_setting(f"{self.prefix}_{name}", default).strip()

    def number(self, name: str, default: str, kind: type = float, low: float = 0) -> Any:
        """The setting as a ``kind`` (``float`` or ``int``) of at least ``low``; raises
        :class:`ConfigError` naming the variable otherwise."""
        raw = self.text(name, default)
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{self.variable(name)}={raw!r} is not a number") from None
        if value < low:
            raise ConfigError(f"{self.variable(name)}={raw!r} must be at least {low}")
        return value


def setting_from_env(name: str, environ: Mapping[str, str] | None = None) -> object:
    """The one setting ``name`` (a :class:`Settings` field) from its ``TES_*`` variable, or
    its default; for code that needs it before (or without) the whole settings, such as
    gunicorn's configuration. Secret references are not resolved here."""
    environ = os.environ if environ is None else environ
    f = next(f for f in fields(Settings) if f.name == name)
    raw = environ.get(f"TES_{name.upper()}")
    return getattr(Settings(), name) if raw is None else _parse(
        f"TES_{name.upper()}", raw, f.default, f.type
    )


def setting_variable(f: Field[object]) -> str:
    """The environment variable (or family of them) a :class:`Settings` field is read from."""
    return str(f.metadata.get("variable", f"TES_{f.name.upper()}"))


def option_help(name: str, text: str) -> str:
    """``text`` plus the variable and default of setting ``name``, for a command-line option."""
    variable = next(setting_variable(f) for f in fields(Settings) if f.name == name)
    default = getattr(Settings(), name)
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = default if default != "" else "empty"
    return f"{text} (env {variable}; default: {shown})".replace("%", "%%")


def _parse(name: str, raw: str, default: object, type_name: object) -> object:
    kind = str(type_name)
    if kind == "Duration | None":
        return parse_duration(name, raw)
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
