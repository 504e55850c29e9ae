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

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


Loader = Callable[[str], dict[str, Any]]
"""The ``document`` fixture of a plugin's tests: a task document by file stem."""


def plugin_documents(test_file: str) -> Path:
    """The ``documents/`` folder next to a plugin's test module or conftest (``__file__``)."""
    return Path(test_file).resolve().parent / "documents"


def document_fixture(documents: Path) -> Callable[[], Loader]:
    """A plugin conftest's ``document`` fixture: loads a task document by file stem from
    ``documents`` or the shared fixtures, a fresh copy on every call."""

    @pytest.fixture
    def document() -> Loader:
        """Load a task document by file stem (a fresh copy each call)."""
        return lambda name: load_document(name, documents)

    return document


def detector_tests(
    detect: Callable[..., Any], engine: str, claimed: dict[str, dict[str, str]], documents: Path
) -> type:
    """The tests every submitter plugin's detector must pass, as a class for a plugin's test
    module to bind to a ``Test*`` name: the engine's shared fixtures are exactly ``claimed``
    (fixture stem to the ``ms-submitter-*`` tags it gets) and are claimed so, without being
    changed; the plugin's near misses (``documents/near-*.json``) and every other engine's
    documents are not claimed. ``detect`` is the plugin's ``tes_detect_submitter``."""
    near = sorted(p.stem for p in documents.glob("near-*.json"))
    others = other_engines_documents(engine)

    class DetectorTests:
        """The detector of ``engine`` over every fixture, near miss and other engine."""

        def test_every_fixture_is_covered(self) -> None:
            mine = {name for name in shared_fixture_names() if fixture_engine(name) == engine}
            assert mine == set(claimed)
            assert len(near) >= 5 and len(others) >= 20

        @pytest.mark.parametrize("name", sorted(claimed))
        def test_claimed_with_tags(self, name: str) -> None:
            task = load_document(name, documents)
            before = copy.deepcopy(task)
            submitter = detect(task=task)
            assert submitter is not None
            assert submitter.tags() == claimed[name]
            assert task == before, "detection must not change the task"

        @pytest.mark.parametrize("name", near)
        def test_near_misses_are_not_claimed(self, name: str) -> None:
            assert detect(task=load_document(name, documents)) is None

        @pytest.mark.parametrize("path", others, ids=lambda p: f"{p.parents[2].name}/{p.stem}")
        def test_other_engines_tasks_are_not_claimed(self, path: Path) -> None:
            assert detect(task=load_document(path.stem, path.parent)) is None

    return DetectorTests
