"""Starting the telemetry exporters plugins provide (``tes_configure_telemetry``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import ConfigError, Settings

if TYPE_CHECKING:
    from ..plugins import Hooks

log = logging.getLogger(__name__)

AZURE_MONITOR = "azure-monitor"
"""What the plugin exporting to Azure Monitor (``tes-azure``) names its exporter."""


def start_exporters(hooks: Hooks, settings: Settings) -> list[str]:
    """Start every configured exporter (call it before building the Flask app); their names.

    ``TES_APPLICATIONINSIGHTS_CONNECTION_STRING`` is a core setting, so that it is
    masked in logs like every secret; when it is set and no plugin started an
    Azure Monitor exporter, start-up fails saying what to install.
    """
    started = hooks.configure_telemetry(settings)
    if settings.applicationinsights_connection_string and AZURE_MONITOR not in started:
        raise ConfigError(
            "TES_APPLICATIONINSIGHTS_CONNECTION_STRING is set but no installed plugin exports "
            "to Azure Monitor: pip install 'tes-azure[monitor]'"
        )
    for name in started:
        log.info("exporting telemetry to %s", name)
    return started
