"""Fixtures: task documents from this folder's ``documents/`` and the shared fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.submitters import load_document, shared_fixture_names

DOCUMENTS = Path(__file__).parent / "documents"


@pytest.fixture
def document() -> Callable[[str], dict[str, Any]]:
    """Load a task document by file stem (a fresh copy each call)."""
    return lambda name: load_document(name, DOCUMENTS)


@pytest.fixture(name="shared_fixture_names")
def shared_names() -> list[str]:
    """Stems of the shared submitter fixtures."""
    return shared_fixture_names()
