"""Reading a Server-Sent Events stream (the parts of the format a TES server sends)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerEvent:
    """One event: its id, name (``message`` when none) and data."""

    id: str | None
    event: str
    data: str


def read_events(lines: Iterable[bytes]) -> Iterator[ServerEvent]:
    """The events of a stream given as lines; a comment (a keepalive) is an event named
    ``comment``, so a reader can look at its clock while the stream is idle."""
    event_id: str | None = None
    name = ""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(event_id, name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            yield ServerEvent(None, "comment", line[1:].strip())
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            event_id = value
