"""Field validators shared by the task schemas."""

from __future__ import annotations

import re

from marshmallow import ValidationError

WILDCARD = re.compile(r"[*?\[]")


def absolute_path(value: str) -> None:
    """Reject paths that are relative or climb out with ``..`` segments."""
    if not value.startswith("/"):
        raise ValidationError(f"must be an absolute path (starting with '/'), got {value!r}")
    if ".." in value.split("/"):
        raise ValidationError(f"must not contain '..' segments, got {value!r}")
    if "\x00" in value:
        raise ValidationError("must not contain NUL characters")


def has_wildcard(path: str) -> bool:
    """Whether an output path holds a glob wildcard (``*``, ``?`` or ``[...]``)."""
    return bool(WILDCARD.search(path))
