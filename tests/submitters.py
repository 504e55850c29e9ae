"""The workflow engines' example task documents, for the submitter plugins' tests.

The shared fixtures are the team's examples (``shared/fixtures/submitters``), copied
into ``tests/fixtures/submitters`` so that a clone alone runs every test;
``TES_SUBMITTER_FIXTURES`` points elsewhere. Each plugin keeps its own extra documents
in its ``tests/documents/`` folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SHARED_FIXTURES = Path(
    os.environ.get("TES_SUBMITTER_FIXTURES", Path(__file__).parent / "fixtures" / "submitters")
)


def load_document(name: str, *folders: Path) -> dict[str, Any]:
    """The document ``<name>.json`` from the first of ``folders`` that has it, else from the
    shared fixtures; a fresh copy on every call."""
    for folder in (*folders, SHARED_FIXTURES):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    searched = ", ".join(str(folder) for folder in (*folders, SHARED_FIXTURES))
    raise FileNotFoundError(f"no document {name}.json in {searched}")


def shared_fixture_names() -> list[str]:
    """Stems of the shared fixtures (``cromwell-1``, ``nextflow-2``, ...)."""
    return sorted(path.stem for path in SHARED_FIXTURES.glob("*.json"))
