"""The one exception type this package raises for a failed transfer."""

from __future__ import annotations


class TransferError(Exception):
    """A file could not be staged or uploaded.

    The message is meant for people: it names the input or output, the URL (redacted, see
    :func:`tes_filetransfer.urls.redact_url`) and what to do next. It never holds secrets.
    """
