"""tes-runner runs on compute nodes without the server: it must not pull the server in."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_PACKAGES = ("flask", "sqlalchemy", "dramatiq", "tes_core", "marshmallow", "alembic")


def test_importing_the_runner_loads_no_server_package() -> None:
    code = (
        "import json, sys\n"
        "import tes_runner, tes_runner.cli, tes_runner.status, tes_runner.taskfile\n"
        "import tes_runner.runtimes\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    loaded = json.loads(result.stdout)
    assert "tes_runner.cli" in loaded  # the check below looks at a real import
    pulled = sorted(m for m in loaded if m.split(".")[0] in SERVER_PACKAGES)
    assert pulled == []
