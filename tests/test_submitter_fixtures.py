"""Every installed submitter detector over every engine's task documents: each claims its
own engine's documents and nothing else.

Documents: the shared fixtures (``tests/fixtures/submitters``, named ``<engine>-...``) and
every plugin's own ``plugins/*/tests/documents`` (near misses and other engines' tasks).
The plugins are loaded from their entry points the way the server loads them; each
detector is called on its own (not through the first-result hook), so that a detector
claiming another engine's document is caught even when the right one runs first. With
no submitter plugin installed (``tox -e core``) the tests skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tes_core.config import Settings
from tes_core.plugins import load_plugins
from tests.submitters import ENGINES, RECORD, SHARED_FIXTURES, fixture_engine

PLUGIN_DOCUMENTS = Path(__file__).resolve().parents[1] / "plugins"
ENGINE_OF = {"tes_cwltes": "cwl-tes"}
"""Engine names (``ms-submitter-name``) of plugin folders named otherwise; an entry point
is named after its engine."""

Detector = Callable[[dict[str, Any]], Any]


def _detectors() -> dict[str, Detector]:
    """Each installed plugin's ``tes_detect_submitter``, by plugin (entry-point) name."""
    settings = Settings.from_env({})
    hooks = load_plugins(settings, require_backend=False)
    found: dict[str, Detector] = {}
    for impl in hooks.pm.hook.tes_detect_submitter.get_hookimpls():
        function = impl.function
        wants_settings = "settings" in impl.argnames

        def detect(task: dict[str, Any], function: Any = function,
                   wants_settings: bool = wants_settings) -> Any:
            return function(task=task, settings=settings) if wants_settings else function(
                task=task
            )

        found[impl.plugin_name] = detect
    return found


DETECTORS = _detectors()
INSTALLED = set(DETECTORS)
"""The engines whose plugin is installed (and not disabled)."""
SHARED = sorted(SHARED_FIXTURES.glob("*.json"))
OTHERS = sorted(PLUGIN_DOCUMENTS.glob("*/tests/documents/*.json"))


def _claims(path: Path) -> dict[str, str]:
    """Which detectors claim the document at ``path``, and the engine name each reports."""
    document = json.loads(path.read_text())
    document.pop(RECORD, None)
    claims = {}
    for plugin, detect in DETECTORS.items():
        submitter = detect(json.loads(json.dumps(document)))
        if submitter is not None:
            claims[plugin] = submitter.name
    return claims


def _engine_of_folder(folder: str) -> str:
    """The engine of a plugin folder (``tes_cwltes``: ``cwl-tes``)."""
    return ENGINE_OF.get(folder, folder.removeprefix("tes_"))


def _expected_claim(path: Path) -> str | None:
    """The engine that must claim a plugin document: the plugin's own for its version
    documents, none for near misses, the named engine (if any) for other engines' tasks."""
    stem = path.stem
    if stem.startswith("near"):
        return None
    named = [engine for engine in ENGINES if engine in stem]
    return named[0] if named else _engine_of_folder(path.parents[2].name)


needs_detectors = pytest.mark.skipif(not DETECTORS, reason="no submitter plugin is installed")


@needs_detectors
def test_every_shared_fixture_names_its_engine() -> None:
    unnamed = [p.name for p in SHARED if fixture_engine(p.stem) is None]
    assert not unnamed, f"name fixtures <engine>-<version>-<n>.json, engines {ENGINES}"
    assert {fixture_engine(p.stem) for p in SHARED} == set(ENGINES)


@needs_detectors
@pytest.mark.parametrize("path", SHARED, ids=[p.stem for p in SHARED])
def test_a_shared_fixture_is_claimed_by_its_engine_alone(path: Path) -> None:
    engine = fixture_engine(path.stem)
    claims = _claims(path)
    assert set(claims.values()) <= {engine}, f"{path.name} claimed by {claims}"
    assert len(claims) <= 1, f"{path.name} claimed by {claims}"
    if engine in INSTALLED:
        assert list(claims.values()) == [engine], f"{path.name}: not claimed by {engine}"


@needs_detectors
@pytest.mark.parametrize("path", OTHERS, ids=[f"{p.parents[2].name}/{p.stem}" for p in OTHERS])
def test_a_plugin_document_is_claimed_as_it_says(path: Path) -> None:
    """A plugin's version documents by its engine alone, its near misses (``near*``) by
    none, other engines' tasks (``other-snakemake``, ``toil``) by that engine or none."""
    expected = _expected_claim(path)
    claims = _claims(path)
    assert len(claims) <= 1, f"{path} claimed by {claims}"
    assert set(claims.values()) <= ({expected} if expected else set()), f"{path}: {claims}"
    if expected in INSTALLED and not any(e in path.stem for e in ENGINES):
        assert list(claims.values()) == [expected], f"{path}: not claimed by {expected}"


@needs_detectors
def test_every_installed_detector_is_an_engine_with_fixtures() -> None:
    """A submitter plugin installed without fixtures here would go untested."""
    unknown = INSTALLED - set(ENGINES)
    assert not unknown, f"add fixtures <engine>-<version>-<n>.json for {unknown}"
