"""The OData ``$filter`` forms the fake understands (those the Batch docs show for list
operations): ``prop eq|ne|ge|le|gt|lt 'value'``, ``startswith(prop,'prefix')``, joined by
``and``/``or``. Anything else is a 400, so a backend asking for more fails a test."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_CLAUSE = re.compile(
    r"\s*(?:startswith\(\s*(?P<sprop>\w+)\s*,\s*'(?P<prefix>[^']*)'\s*\)"
    r"|(?P<prop>\w+)\s+(?P<op>eq|ne|ge|le|gt|lt)\s+(?:datetime)?'(?P<value>[^']*)')\s*"
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "ge": lambda a, b: a >= b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "lt": lambda a, b: a < b,
}


class FilterError(ValueError):
    """A ``$filter`` the fake (or Batch) does not understand."""


def compile_filter(text: str | None) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over an entity's JSON for ``text`` (``None``: everything)."""
    if not text:
        return lambda entity: True
    alternatives = []
    for branch in re.split(r"\s+or\s+", text):
        clauses = []
        for part in re.split(r"\s+and\s+", branch):
            match = _CLAUSE.fullmatch(part)
            if not match:
                raise FilterError(f"unsupported $filter clause {part!r}")
            clauses.append(_clause(match))
        alternatives.append(clauses)
    return lambda entity: any(all(c(entity) for c in clauses) for clauses in alternatives)


def _clause(match: re.Match[str]) -> Callable[[Mapping[str, Any]], bool]:
    if match["sprop"]:
        prop, prefix = match["sprop"], match["prefix"]
        return lambda e: str(e.get(prop, "")).lower().startswith(prefix.lower())
    prop, op, value = match["prop"], _OPS[match["op"]], match["value"]
    return lambda e: op(str(e.get(prop, "")), value)


def select(entity: Mapping[str, Any], fields: str | None) -> dict[str, Any]:
    """The entity with only the ``$select`` fields (all without one; never the fake's own
    ``_``-prefixed bookkeeping)."""
    if not fields:
        return {k: v for k, v in entity.items() if not k.startswith("_")}
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: entity[k] for k in wanted if k in entity}
