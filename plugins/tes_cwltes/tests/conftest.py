"""Fixtures: task documents from this folder's ``documents/`` and the shared fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.submitters import load_document

DOCUMENTS = Path(__file__).parent / "documents"


@pytest.fixture
def document() -> Callable[[str], dict[str, Any]]:
    """Load a task document by file stem (a fresh copy each call)."""
    return lambda name: load_document(name, DOCUMENTS)
