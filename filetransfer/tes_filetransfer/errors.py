"""The exception types this package raises for a failed transfer."""

from __future__ import annotations


class TransferError(Exception):
    """A file could not be staged or uploaded.

    The message is meant for people: it names the input or output, the URL (redacted, see
    :func:`tes_filetransfer.urls.redact_url`) and what to do next. It never holds secrets.
    """


class TransientError(TransferError):
    """A failure worth another attempt: a dropped connection, a timeout, HTTP 429 or 5xx.

    :func:`tes_filetransfer.retry.with_retries` retries these with backoff; any other
    :class:`TransferError` is final at once.
    """
