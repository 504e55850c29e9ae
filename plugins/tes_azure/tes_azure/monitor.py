"""OpenTelemetry traces and logs exported to Azure Monitor (Application Insights).

On when ``TES_APPLICATIONINSIGHTS_CONNECTION_STRING`` (or the standard
``APPLICATIONINSIGHTS_CONNECTION_STRING``) is set; needs the extra
``tes-azure[monitor]``. Started by the ``tes_configure_telemetry`` hook. The
exporter sends in the background from its own threads and keeps what it could
not send for a later retry, so an unreachable ingestion endpoint neither blocks
nor fails requests.
"""

from __future__ import annotations

import logging
import threading

from tes_core.config import ConfigError, Settings

log = logging.getLogger(__name__)

_configured = False
_lock = threading.Lock()


def configure_azure_monitor(settings: Settings) -> bool:
    """Start exporting if a connection string is set (once per process); whether it is on.

    Call it before the Flask app is built: the Flask instrumentation patches the
    ``Flask`` class, so only apps made afterwards are traced.
    """
    global _configured
    connection_string = settings.applicationinsights_connection_string
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor as configure
            from opentelemetry.sdk.resources import Resource
        except ImportError:
            raise ConfigError(
                "TES_APPLICATIONINSIGHTS_CONNECTION_STRING is set: install "
                "'tes-azure[monitor]' (azure-monitor-opentelemetry)"
            ) from None
        try:
            configure(
                connection_string=connection_string,
                resource=Resource.create({"service.name": settings.service_name}),
                enable_live_metrics=False,
                instrumentation_options={
                    "flask": {"enabled": True},
                    "psycopg2": {"enabled": False},
                    "django": {"enabled": False},
                    "fastapi": {"enabled": False},
                },
            )
        except ValueError as exc:
            # The message says what is wrong, not the key the string holds.
            raise ConfigError(
                f"TES_APPLICATIONINSIGHTS_CONNECTION_STRING is not usable: {exc}"
            ) from None
        _configured = True
    log.info("exporting traces and logs to Azure Monitor")
    return True
