"""Makes ``runner_support`` (the helpers of these tests) importable from every test module,
whichever folder pytest runs from."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
