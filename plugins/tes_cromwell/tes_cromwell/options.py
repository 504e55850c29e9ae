"""The plugin's settings, read from the core's ``Settings`` (``TES_CROMWELL_*``).

The README's settings table lists each one. They are parsed once per ``Settings``
object (one per process), not once per task.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import timedelta

from tes_core.blobstore import sas_lifetime
from tes_core.config import ConfigError, Settings

DEFAULT_PREFIXES = ("/cromwell-executions", "/tes-wd/shared-global")
DEFAULT_CONTAINER = "cromwell"
DEFAULT_SAS_LIFETIME_HOURS = 48.0
CONTAINER_FIELDS = ("workflow_id", "root_workflow_id")

_CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_SAMPLE_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Options:
    """What ``TES_CROMWELL_*`` say."""

    local_prefixes: tuple[str, ...] = DEFAULT_PREFIXES
    """Cromwell's local roots, each the mount point of :attr:`container`."""
    container: str = DEFAULT_CONTAINER
    """Container name, or a template with ``{root_workflow_id}`` / ``{workflow_id}``."""
    sas_lifetime: timedelta = timedelta(hours=DEFAULT_SAS_LIFETIME_HOURS)
    list_execution_folder: bool = True
    """The ``write_tsv`` workaround: add unlisted files of the call's execution folder."""

    def container_for(self, workflow_id: str | None, root_workflow_id: str | None) -> str:
        """The container of a workflow's local files."""
        if "{" not in self.container:
            return self.container
        return self.container.format(
            workflow_id=workflow_id or "", root_workflow_id=root_workflow_id or workflow_id or ""
        )


_cache: tuple[Settings, Options] | None = None
_lock = threading.Lock()


def options(settings: Settings) -> Options:
    """The plugin's options from ``settings`` (parsed once per settings object).

    Raises :class:`ConfigError` naming the variable when a value cannot be used.
    """
    global _cache
    cached = _cache
    if cached is not None and cached[0] is settings:
        return cached[1]
    parsed = parse(settings)
    with _lock:
        _cache = (settings, parsed)
    return parsed


def parse(settings: Settings) -> Options:
    """Read and check every ``TES_CROMWELL_*`` setting."""
    raw_prefixes = settings.plugin_setting("cromwell_local_prefixes", ",".join(DEFAULT_PREFIXES))
    prefixes = tuple(p.strip().rstrip("/") for p in raw_prefixes.split(",") if p.strip())
    for prefix in prefixes:
        if not prefix.startswith("/"):
            raise ConfigError(
                f"TES_CROMWELL_LOCAL_PREFIXES: {prefix!r} is not an absolute path"
            )
    container = settings.plugin_setting("cromwell_container", DEFAULT_CONTAINER).strip()
    try:
        sample = container.format(**dict.fromkeys(CONTAINER_FIELDS, _SAMPLE_ID))
    except (KeyError, IndexError, ValueError):
        sample = ""
    if not _CONTAINER_NAME.fullmatch(sample):
        raise ConfigError(
            f"TES_CROMWELL_CONTAINER={container!r} is not a container name (3 to 63 lower-case "
            "letters, digits and single hyphens), optionally with {root_workflow_id} or "
            "{workflow_id} in it"
        )
    listing = settings.plugin_setting("cromwell_list_execution_folder", "true").strip().lower()
    if listing not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ConfigError(f"TES_CROMWELL_LIST_EXECUTION_FOLDER={listing!r} is not a boolean")
    return Options(
        local_prefixes=prefixes,
        container=container,
        sas_lifetime=sas_lifetime(
            settings, "cromwell_sas_lifetime_hours", DEFAULT_SAS_LIFETIME_HOURS
        ),
        list_execution_folder=listing in {"1", "true", "yes", "on"},
    )
