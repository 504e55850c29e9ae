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


HEAVY_PACKAGES = ("fsspec", "requests", "urllib3", "azure", "adlfs", "boto3", "botocore",
                  "aiobotocore", "s3fs", "gcsfs", "aiohttp")
"""Store libraries a node loads only for a task that moves a URL of that store: importing
them all made every ``tes-runner run`` start about a quarter of a second later."""


def _loaded_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


def _heavy(loaded: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in loaded if m.split(".")[0] in HEAVY_PACKAGES})


def test_the_runner_command_imports_no_store_library() -> None:
    loaded = _loaded_after("import tes_runner.cli")
    assert "tes_filetransfer.storage" in loaded  # the router itself is there
    assert _heavy(loaded) == []


def test_a_local_transfer_imports_no_store_library() -> None:
    loaded = _loaded_after(
        "import tes_runner.cli\n"
        "from tes_filetransfer.storage import storage_for\n"
        "storage_for('/tmp/x'); storage_for('file:///tmp/x')\n"
        "from tes_filetransfer.storage import is_blob_url\n"
        "assert not is_blob_url('https://example.org/a/b')\n"
    )
    assert _heavy(loaded) == []


def test_a_url_of_a_store_imports_its_library_then() -> None:
    loaded = _loaded_after(
        "import tes_runner.cli\n"
        "from tes_filetransfer.storage import storage_for\n"
        "print(type(storage_for('https://example.org/f')).__name__, file=sys.stderr)\n"
    )
    assert _heavy(loaded) == ["requests", "urllib3"]  # HTTP's library, not the clouds'
