"""Every log record carries the request id and has its secrets removed.

Both are done by a log record factory, not a handler filter, so they hold for
every handler: the console, gunicorn's, and Azure Monitor's OpenTelemetry handler.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from .redact import redact

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
NO_REQUEST = "-"

request_id: ContextVar[str] = ContextVar("tes_request_id", default=NO_REQUEST)
"""The id of the request (or task message) this thread or task is working on."""

_formatter = logging.Formatter()


def install_log_context() -> None:
    """Put ``request_id`` on every record and redact secrets (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "tes_log_context", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = request_id.get()
        redact_record(record)
        return record

    factory.tes_log_context = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(level: int | str = logging.INFO) -> None:
    """Install the record factory and, unless logging is configured already (e.g. by
    gunicorn's ``logconfig``), a console handler showing request ids."""
    install_log_context()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    # The Azure SDKs log every HTTP request at INFO: keep their warnings only.
    logging.getLogger("azure").setLevel(logging.WARNING)


def redact_record(record: logging.LogRecord) -> None:
    """Remove secrets from the message, the traceback and the stack of ``record``."""
    try:
        message = record.getMessage()
    except Exception:
        return  # a broken format string: logging reports it itself when the record is handled
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        text = _formatter.formatException(record.exc_info)
        record.exc_text = redact(text)
        if record.exc_text != text:
            # Handlers that read the exception itself (OpenTelemetry's) would see the
            # secret: they get the redacted text only.
            record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
