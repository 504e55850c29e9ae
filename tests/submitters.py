"""The workflow engines' example task documents, for the submitter plugins' tests.

The shared fixtures are the team's examples (``shared/fixtures/submitters``), copied
into ``tests/fixtures/submitters`` so that a clone alone runs every test;
``TES_SUBMITTER_FIXTURES`` points elsewhere. Each plugin keeps its own extra documents
in its ``tests/documents/`` folder.

A fixture is named ``<engine>-<version>-<n>.json`` (``snakemake-8-1``; the first ones,
``cromwell-1`` and ``nextflow-1``, have no version) and may carry a top-level ``_fixture``
object recording the engine version and the source files it follows; the server ignores
unknown fields, and :func:`load_document` drops it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORD = "_fixture"
"""The top-level key of a fixture's record of where it comes from (not part of the task)."""

ENGINES = ("cromwell", "nextflow", "snakemake", "cwl-tes", "toil")
"""The engines with fixtures, as their ``ms-submitter-name``, each a fixture name prefix."""

SHARED_FIXTURES = Path(
    os.environ.get("TES_SUBMITTER_FIXTURES", Path(__file__).parent / "fixtures" / "submitters")
)


def load_document(name: str, *folders: Path) -> dict[str, Any]:
    """The document ``<name>.json`` from the first of ``folders`` that has it, else from the
    shared fixtures; a fresh copy on every call."""
    for folder in (*folders, SHARED_FIXTURES):
        path = folder / f"{name}.json"
        if path.exists():
            document = json.loads(path.read_text())
            document.pop(RECORD, None)
            return document
    searched = ", ".join(str(folder) for folder in (*folders, SHARED_FIXTURES))
    raise FileNotFoundError(f"no document {name}.json in {searched}")


def shared_fixture_names() -> list[str]:
    """Stems of the shared fixtures (``cromwell-1``, ``nextflow-2``, ...)."""
    return sorted(path.stem for path in SHARED_FIXTURES.glob("*.json"))


def fixture_engine(name: str) -> str | None:
    """The engine a fixture named ``name`` (a file stem) comes from, by its prefix."""
    return next((engine for engine in ENGINES if name.startswith(engine + "-")), None)


def other_engines_documents(engine: str) -> list[Path]:
    """Every document a detector of ``engine`` must not claim: the shared fixtures of the
    other engines and the other plugins' own documents (their versions and near misses)."""
    plugins = Path(__file__).resolve().parents[1] / "plugins"
    shared = [p for p in SHARED_FIXTURES.glob("*.json") if fixture_engine(p.stem) != engine]
    own = engine.replace("-", "")
    theirs = [
        p for p in plugins.glob("*/tests/documents/*.json")
        if p.parents[2].name != f"tes_{own}" and engine not in p.stem
    ]
    return sorted(shared + theirs)
