"""How long one request to a store may take: the same bounds for every library.

A library's own defaults can hold a transfer for minutes against a store that accepts
connections and never answers (adlfs' Azure client waits 15, 18 and 24 s between its
four tries, each allowed a minute of silence; botocore tries five times). Every client
is built with these bounds and at most :data:`LIBRARY_ATTEMPTS` tries of its own
(:func:`tes_filetransfer.retry.with_retries` retries the whole file on top), and an
interrupt (:mod:`tes_filetransfer.interrupt`) stops waiting for one at once.
"""

from __future__ import annotations

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection."""
READ_TIMEOUT = 60.0
"""Seconds a store may stay silent in the middle of an answer."""
LIBRARY_ATTEMPTS = 2
"""Tries a library makes of one request before the failure reaches our own retries."""
