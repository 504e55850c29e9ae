"""Printing tasks and lists: a table for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import yaml

FORMATS = ("table", "json", "yaml")


def dump(value: Any, fmt: str, out: TextIO = sys.stdout) -> None:
    """``value`` as JSON or YAML (a table format falls back to JSON for one document)."""
    if fmt == "yaml":
        yaml.safe_dump(value, out, sort_keys=False, allow_unicode=True)
    else:
        out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def task_table(tasks: list[dict[str, Any]], out: TextIO = sys.stdout) -> None:
    """One line per task: id, state, name, created (the columns the view has)."""
    rows = [("ID", "STATE", "NAME", "CREATED")]
    rows += [(t.get("id", ""), t.get("state", ""), t.get("name") or "",
              t.get("creation_time") or "") for t in tasks]
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    for row in rows:
        out.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
                  .rstrip() + "\n")


def executor_logs(task: dict[str, Any], streams: tuple[str, ...], out: TextIO = sys.stdout) -> int:
    """Print the executors' ``stdout``/``stderr`` tails of a FULL task; how many printed."""
    printed = 0
    attempts = task.get("logs") or []
    for index, entry in enumerate(attempts[-1].get("logs") or [] if attempts else []):
        for stream in streams:
            text = entry.get(stream)
            if text:
                out.write(f"--- executor {index} {stream} (exit code "
                          f"{entry.get('exit_code')}) ---\n{text}")
                if not text.endswith("\n"):
                    out.write("\n")
                printed += 1
    return printed
