"""Shared bits for reading TES input/output dicts and naming them in messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import TransferError

FILE = "FILE"
DIRECTORY = "DIRECTORY"


def describe(kind: str, item: Mapping[str, Any], index: int) -> str:
    """``input 'reads' (/data/r.fq)``, ``output /out/x`` or ``input #2`` for messages."""
    name = item.get("name")
    path = item.get("path")
    where = path if isinstance(path, str) and path else f"#{index}"
    if isinstance(name, str) and name:
        return f"{kind} {name!r} ({where})"
    return f"{kind} {where}"


def file_type(item: Mapping[str, Any], what: str) -> str:
    """The item's ``type`` as ``FILE`` or ``DIRECTORY`` (``FILE`` when absent)."""
    value = item.get("type") or FILE
    value = getattr(value, "value", value)  # tolerate an Enum
    text = str(value).upper()
    if text not in (FILE, DIRECTORY):
        raise TransferError(f"{what}: type {value!r} is unknown: use FILE or DIRECTORY")
    return text
