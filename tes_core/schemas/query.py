"""Query parameters of the list and get endpoints."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from werkzeug.datastructures import MultiDict

from ..errors import BadRequest
from ..states import State

VIEWS = ("MINIMAL", "BASIC", "FULL")
DEFAULT_PAGE_SIZE = 256
MAX_PAGE_SIZE = 2047  # the spec: page_size must be below 2048
MAX_SEQ = 2**63 - 1  # the largest task sequence number a database column can hold


@dataclass(frozen=True)
class ListQuery:
    """A validated ``GET /tasks`` query."""

    view: str = "MINIMAL"
    page_size: int = DEFAULT_PAGE_SIZE
    before_seq: int | None = None
    """Keyset cursor: only tasks created before this one (decoded page token)."""
    name_prefix: str | None = None
    state: str | None = None
    tags: list[tuple[str, str | None]] = field(default_factory=list)
    """(key, value) pairs; a ``None`` value means "the key exists, any value"."""


def parse_view(args: MultiDict[str, str]) -> str:
    """The ``view`` parameter, MINIMAL when absent; 400 for anything else."""
    view = args.get("view") or "MINIMAL"
    if view not in VIEWS:
        raise BadRequest(f"view must be one of {', '.join(VIEWS)}, got {view!r}", field="view")
    return view


def parse_list_query(args: MultiDict[str, str]) -> ListQuery:
    """Validate ``GET /tasks`` parameters; raise :class:`BadRequest` naming the parameter."""
    page_size = DEFAULT_PAGE_SIZE
    raw_size = args.get("page_size")
    if raw_size not in (None, ""):
        try:
            page_size = int(raw_size)
        except ValueError:
            raise BadRequest(
                f"page_size must be an integer, got {raw_size!r}", field="page_size"
            ) from None
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise BadRequest(
                f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}",
                field="page_size",
            )

    state = args.get("state")
    if state is not None and state not in State.__members__:
        raise BadRequest(
            f"state must be one of {', '.join(State)}, got {state!r}", field="state"
        )

    keys = args.getlist("tag_key")
    values = args.getlist("tag_value")
    if len(values) > len(keys):
        raise BadRequest("tag_value given without a matching tag_key", field="tag_value")
    tags: list[tuple[str, str | None]] = []
    for index, key in enumerate(keys):
        if not key:
            raise BadRequest("tag_key must not be empty", field="tag_key")
        value = values[index] if index < len(values) else None
        tags.append((key, value or None))

    name_prefix = args.get("name_prefix") or None
    for name, given in (("name_prefix", [name_prefix or ""]), ("tag_key", keys),
                        ("tag_value", values)):
        if any("\x00" in value for value in given):
            raise BadRequest(f"{name} must not contain NUL characters", field=name)

    token = args.get("page_token") or None
    return ListQuery(
        view=parse_view(args),
        page_size=page_size,
        before_seq=decode_page_token(token) if token else None,
        name_prefix=name_prefix,
        state=state,
        tags=tags,
    )


def encode_page_token(seq: int) -> str:
    """An opaque token for "tasks older than ``seq``"."""
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """Inverse of :func:`encode_page_token`; 400 for a token this server did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, _, seq = raw.partition(":")
        if version != "v1":
            raise ValueError(raw)
        value = int(seq)
        if not 1 <= value <= MAX_SEQ:
            raise ValueError(raw)
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "page_token is not valid: pass next_page_token from a previous response unchanged",
            field="page_token",
        ) from None
