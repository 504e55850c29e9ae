"""Field validators shared by the task schemas."""

from __future__ import annotations

import re

from marshmallow import ValidationError

WILDCARD = re.compile(r"[*?\[]")
FILE_TYPES = ("FILE", "DIRECTORY")
MAX_TAG_KEY = 255  # the width of the tag key column
MAX_TAG_BYTES = 2000  # key + value, UTF-8: tags are indexed, and PostgreSQL caps an entry at 2.7 kB


def tag_fits(key: str, value: str) -> bool:
    """Whether a tag is small enough to index."""
    return len(key.encode("utf-8", "surrogatepass")) + len(
        value.encode("utf-8", "surrogatepass")
    ) <= MAX_TAG_BYTES


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
