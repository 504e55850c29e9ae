"""Plugin loading, seen from outside: real ``tes-server`` processes with throwaway plugins.

Each test builds small distributions at test time: a module plus a
``<name>.dist-info`` folder (``METADATA`` and ``entry_points.txt``) in a folder
put on the child process's ``PYTHONPATH``. That is all ``importlib.metadata``
needs to find an entry point, so no pip is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import tes_core
from tests.servers import ServerProcess, server_env

PARKED_BACKEND = '''
from tes_core import hookimpl
from tes_core.backends.base import Backend


class ParkedBackend(Backend):
    """Accepts tasks and leaves them QUEUED: enough to look at what was stored."""

    name = "{backend}"

    def submit(self, task):
        return "parked:" + task.id

    def cancel(self, task):
        return True


@hookimpl
def tes_register_backends(register):
    register("{backend}", ParkedBackend)
'''

SUBMITTER_HOOKS = '''
from tes_core import hookimpl
from tes_core.errors import SubmitterError
from tes_core.submitter import Submitter


@hookimpl
def tes_detect_submitter(task):
    tags = task.get("tags") or {}
    if "plugtest-workflow" not in tags:
        return None
    return Submitter(
        name="plugtest",
        workflow_id=tags["plugtest-workflow"],
        workflow_name="demo",
        workflow_stage=task.get("name"),
        root_workflow_id=tags.get("plugtest-root"),
    )


@hookimpl
def tes_rewrite_url(url, direction, submitter, settings, storage):
    if submitter is not None and url.startswith("plugtest://"):
        base = settings.plugin_setting("plugtest_base", "https://unset.example/")
        return base + direction + "/" + url[len("plugtest://"):]
    if submitter is not None and url.startswith("needs-storage://"):
        if storage is None:
            raise SubmitterError("configure TES_STORAGE_CONNECTION_STRING")
        return storage.blob_url("plugtest", url[len("needs-storage://"):])
    return None


@hookimpl
def tes_inject_inputs(task, submitter, backend):
    if submitter is None:
        return None
    return [{"path": "/plugtest/injected.txt", "url": "plugtest://for-" + backend.name}]
'''


class Site:
    """A folder of throwaway distributions, to put on a child process's ``PYTHONPATH``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def add(
        self,
        distribution: str,
        version: str,
        entry_points: dict[str, str],
        *,
        groups: dict[str, dict[str, str]] | None = None,
        **modules: str,
    ) -> None:
        """Install ``distribution`` with ``[tes]`` entry points (and those of other
        ``groups``) and module sources."""
        for module, source in modules.items():
            (self.path / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.path / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
        text = ""
        for group, members in {"tes": entry_points, **(groups or {})}.items():
            if members:
                lines = "".join(f"{name} = {target}\n" for name, target in members.items())
                text += f"[{group}]\n{lines}"
        (info / "entry_points.txt").write_text(text)

    def env(self, data_dir: Path, **settings: str) -> dict[str, str]:
        """A test server's environment with these distributions importable."""
        env = server_env(data_dir, **settings)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.path), env.get("PYTHONPATH", "")) if p
        )
        return env


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``tes-server`` to its end; a server that starts instead fails the test by timing out."""
    return subprocess.run(
        [sys.executable, "-m", "tes_core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def serve_must_fail(site: Site, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    result = cli(site.env(data, **settings), "serve", "--port", "0", "--data-dir", str(data))
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, "a clear message, not a stack trace"
    assert "TES server ready" not in result.stdout
    return result


def listed(site: Site, tmp_path: Path, **settings: str) -> dict[str, dict]:
    result = cli(site.env(tmp_path / "data", **settings), "plugins")
    assert result.returncode == 0, result.stderr
    return {info["name"]: info for info in json.loads(result.stdout)}


# -- tes-server plugins ---------------------------------------------------------------------


def test_plugins_lists_the_builtin_and_installed_plugins(site: Site, tmp_path: Path) -> None:
    site.add(
        "tes-plugtest", "1.2.3", {"plugtest": "plugtest_hooks"},
        plugtest_hooks=PARKED_BACKEND.format(backend="plugtest") + SUBMITTER_HOOKS,
    )

    plugins = listed(site, tmp_path)

    local = plugins["tes_core.backends.local.plugin"]
    assert local == {
        "name": "tes_core.backends.local.plugin",
        "module": "tes_core.backends.local.plugin",
        "distribution": "tes-core",
        "version": tes_core.__version__,
        "hooks": ["tes_register_backends"],
        "builtin": True,
        "backends": ["local"],
        "error": None,
    }
    assert plugins["plugtest"] == {
        "name": "plugtest",
        "module": "plugtest_hooks",
        "distribution": "tes-plugtest",
        "version": "1.2.3",
        "hooks": [
            "tes_detect_submitter",
            "tes_inject_inputs",
            "tes_register_backends",
            "tes_rewrite_url",
        ],
        "builtin": False,
        "backends": ["plugtest"],
        "error": None,
    }


def test_plugins_shows_a_broken_plugin_with_its_error(site: Site, tmp_path: Path) -> None:
    site.add("tes-broken", "0.1", {"broken": "plugtest_broken"},
             plugtest_broken="raise ImportError('the cloud SDK is not installed')\n")

    # Even with the broken plugin configured: this command is for finding out why.
    plugins = listed(site, tmp_path, TES_BACKEND="broken")

    broken = plugins["broken"]
    assert broken["distribution"] == "tes-broken" and broken["version"] == "0.1"
    assert broken["hooks"] == []
    assert broken["error"] == "ImportError: the cloud SDK is not installed"


# -- plugins that fail to load --------------------------------------------------------------


def test_a_plugin_that_fails_to_import_is_skipped(site: Site, tmp_path: Path) -> None:
    site.add("tes-broken", "0.1", {"broken": "plugtest_broken"},
             plugtest_broken="raise ImportError('the cloud SDK is not installed')\n")
    data = tmp_path / "data"
    server = ServerProcess(data, site.env(data)).start()
    try:
        assert requests.get(f"{server.url}/service-info", timeout=10).status_code == 200
        assert "skipping plugin 'broken' (plugtest_broken): it failed to load" in server.log()
        assert "the cloud SDK is not installed" in server.log()
    finally:
        server.stop()


def test_the_configured_backend_failing_to_import_stops_start_up(
    site: Site, tmp_path: Path
) -> None:
    site.add("tes-broken", "0.1", {"broken": "plugtest_broken"},
             plugtest_broken="raise ImportError('the cloud SDK is not installed')\n")

    result = serve_must_fail(site, tmp_path, TES_BACKEND="broken")

    assert result.returncode == 1
    assert "the plugin 'broken' (plugtest_broken) provides the configured backend" in (
        result.stderr
    )
    assert "the cloud SDK is not installed" in result.stderr


def test_a_plugin_whose_registration_fails_is_skipped_unless_configured(
    site: Site, tmp_path: Path
) -> None:
    # The usual pattern imports the backend (and its SDK) inside the hook, so an
    # SDK problem shows up when the hook runs rather than at import.
    site.add("tes-lazy", "0.1", {"lazy": "plugtest_lazy"}, plugtest_lazy='''
        from tes_core import hookimpl

        @hookimpl
        def tes_register_backends(register):
            import plugtest_missing_sdk  # noqa: F401
    ''')
    data = tmp_path / "data"
    server = ServerProcess(data, site.env(data)).start()
    try:
        assert "skipping the backends of plugin 'lazy'" in server.log()
    finally:
        server.stop()

    result = serve_must_fail(site, tmp_path, TES_BACKEND="lazy")
    assert "the plugin 'lazy' provides the configured backend" in result.stderr
    assert "plugtest_missing_sdk" in result.stderr

    lazy = listed(site, tmp_path)["lazy"]
    assert lazy["hooks"] == ["tes_register_backends"] and lazy["backends"] == []
    assert lazy["error"] == "ModuleNotFoundError: No module named 'plugtest_missing_sdk'"


def test_a_hook_that_does_not_match_its_spec_is_skipped(site: Site, tmp_path: Path) -> None:
    site.add("tes-future", "9.0", {"future": "plugtest_future"}, plugtest_future='''
        from tes_core import hookimpl

        @hookimpl
        def tes_rewrite_url(url, flavour):
            return None
    ''')

    result = cli(site.env(tmp_path / "data"), "plugins")

    assert result.returncode == 0
    assert "skipping plugin 'future'" in result.stderr
    [future] = [info for info in json.loads(result.stdout) if info["name"] == "future"]
    assert "flavour" in future["error"]


# -- TES_DISABLED_PLUGINS -------------------------------------------------------------------


def test_disabled_plugins_are_not_even_imported(site: Site, tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    site.add("tes-noisy", "0.1", {"noisy": "plugtest_noisy"},
             plugtest_noisy=f"open({str(marker)!r}, 'w').close()\nraise ImportError('boom')\n")
    site.add("tes-plugtest", "1.2.3", {"plugtest": "plugtest_parked"},
             plugtest_parked=PARKED_BACKEND.format(backend="plugtest"))

    result = cli(site.env(tmp_path / "data", TES_DISABLED_PLUGINS="noisy, plugtest"), "plugins")

    assert result.returncode == 0
    assert not marker.exists()
    assert "plugin 'noisy' is disabled by TES_DISABLED_PLUGINS" in result.stderr
    names = {info["name"] for info in json.loads(result.stdout)}
    assert not names & {"noisy", "plugtest"}

    failed = serve_must_fail(site, tmp_path, TES_BACKEND="plugtest",
                             TES_DISABLED_PLUGINS="plugtest")
    assert "TES_BACKEND='plugtest' is not provided by any installed plugin" in failed.stderr


# -- choosing the backend -------------------------------------------------------------------


def test_an_unknown_backend_names_the_available_ones(site: Site, tmp_path: Path) -> None:
    site.add("tes-plugtest", "1.2.3", {"plugtest": "plugtest_parked"},
             plugtest_parked=PARKED_BACKEND.format(backend="plugtest"))

    result = serve_must_fail(site, tmp_path, TES_BACKEND="nonexistent")

    assert result.returncode == 2
    message = result.stderr
    assert "TES_BACKEND='nonexistent' is not provided by any installed plugin" in message
    assert "available: " in message
    available = message.split("available: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"local", "plugtest"} <= set(available)


def test_two_plugins_registering_one_backend_name_stop_start_up(
    site: Site, tmp_path: Path
) -> None:
    site.add("tes-twin-a", "1.0", {"twin_a": "plugtest_twin_a"},
             plugtest_twin_a=PARKED_BACKEND.format(backend="twin"))
    site.add("tes-twin-b", "1.0", {"twin_b": "plugtest_twin_b"},
             plugtest_twin_b=PARKED_BACKEND.format(backend="twin"))

    result = serve_must_fail(site, tmp_path)

    assert result.returncode == 1
    assert "two plugins register a backend called 'twin'" in result.stderr
    assert "'twin_a'" in result.stderr and "'twin_b'" in result.stderr
    assert "TES_DISABLED_PLUGINS" in result.stderr

    data = tmp_path / "data-one"
    server = ServerProcess(
        data, site.env(data, TES_BACKEND="twin", TES_DISABLED_PLUGINS="twin_b")
    ).start()
    try:
        info = requests.get(f"{server.url}/service-info", timeout=10).json()
        assert "'twin' backend" in info["description"]
    finally:
        server.stop()


# -- submitter hooks on a real server -------------------------------------------------------


@pytest.fixture(scope="module")
def hooked_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server with a plugin that detects, rewrites and injects, on its parked backend."""
    root = tmp_path_factory.mktemp("hooked")
    site = Site(root / "site")
    site.add("tes-plugtest", "1.2.3", {"plugtest": "plugtest_hooks"},
             plugtest_hooks=PARKED_BACKEND.format(backend="plugtest") + SUBMITTER_HOOKS)
    server = ServerProcess(
        root / "data",
        site.env(root / "data", TES_BACKEND="plugtest", TES_PLUGTEST_BASE="https://storage.example/"),
    )
    yield server.start()
    server.stop()


def _create(url: str, task: dict) -> dict:
    created = requests.post(f"{url}/tasks", json=task, timeout=10)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    return requests.get(f"{url}/tasks/{task_id}", params={"view": "FULL"}, timeout=10).json()


def test_submitter_hooks_change_a_created_task(hooked_server: ServerProcess) -> None:
    stored = _create(
        hooked_server.url,
        {
            "name": "align",
            "tags": {"plugtest-workflow": "wf-1"},
            "inputs": [{"path": "/in/reads.fq", "url": "plugtest://reads.fq"}],
            "outputs": [{"path": "/out/aligned.bam", "url": "plugtest://aligned.bam"}],
            "executors": [{"image": "alpine", "command": ["true"]}],
        },
    )

    assert stored["tags"] == {
        "plugtest-workflow": "wf-1",
        "ms-submitter-name": "plugtest",
        "ms-submitter-workflow-id": "wf-1",
        "ms-submitter-workflow-name": "demo",
        "ms-submitter-workflow-stage": "align",
    }
    inputs = {item["path"]: item for item in stored["inputs"]}
    assert inputs["/in/reads.fq"]["url"] == "https://storage.example/input/reads.fq"
    injected = inputs["/plugtest/injected.txt"]
    assert injected["url"] == "https://storage.example/input/for-plugtest", (
        "injected inputs are rewritten too"
    )
    assert injected["type"] == "FILE"
    assert stored["outputs"][0]["url"] == "https://storage.example/output/aligned.bam"


def test_tasks_the_plugin_does_not_recognise_are_left_alone(
    hooked_server: ServerProcess,
) -> None:
    stored = _create(
        hooked_server.url,
        {
            "inputs": [{"path": "/in/reads.fq", "url": "plugtest://reads.fq"}],
            "executors": [{"image": "alpine", "command": ["true"]}],
        },
    )

    assert not any(key.startswith("ms-submitter-") for key in stored.get("tags") or {})
    assert [item["url"] for item in stored["inputs"]] == ["plugtest://reads.fq"]


# -- in process -----------------------------------------------------------------------------


def test_one_failing_state_observer_does_not_silence_the_others(caplog) -> None:
    import pluggy

    from tes_core import hookimpl, hookspecs
    from tes_core.plugins import Hooks

    heard: list[tuple[str, ...]] = []

    class Failing:
        @hookimpl
        def tes_task_state_changed(self, task_id):
            raise RuntimeError("the mail server is down")

    class Listening:
        @hookimpl
        def tes_task_state_changed(self, task_id, new_state):
            heard.append((task_id, new_state))

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(Listening(), name="listening")
    pm.register(Failing(), name="failing")  # called first: pluggy calls the newest first

    Hooks(pm).task_state_changed("t-1", "RUNNING", "COMPLETE")

    assert heard == [("t-1", "COMPLETE")]
    assert "plugin 'failing': tes_task_state_changed failed for task t-1" in caplog.text


def test_the_url_rewriter_calls_plugins_as_pluggy_does() -> None:
    """``url_rewriter`` (one lookup per task) answers what ``rewrite_url`` (pluggy, per URL)
    does: the newest plugin first, the first answer wins, each gets only its arguments; with
    a wrapper registered it goes through pluggy."""
    from types import SimpleNamespace
    from typing import Any

    import pluggy

    from tes_core import hookimpl, hookspecs
    from tes_core.plugins import Hooks
    from tes_core.submitter import Submitter

    class Older:
        @hookimpl
        def tes_rewrite_url(self, url, direction, storage):
            return f"older:{url}:{direction}:{storage}"

    class Newer:
        @hookimpl
        def tes_rewrite_url(self, url, submitter):
            return f"newer:{url}" if url.startswith("/mine/") else None

    class Wrapper:
        @hookimpl(wrapper=True)
        def tes_rewrite_url(self, url):
            result = yield
            return f"wrapped:{result}"

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    hooks = Hooks(pm)
    backend: Any = SimpleNamespace(name="local", settings=None)
    task: dict = {"inputs": []}
    submitter = Submitter("x")
    assert hooks.url_rewriter(task, submitter, backend, storage="s") is None
    pm.register(Older(), name="older")
    pm.register(Newer(), name="newer")
    rewrite = hooks.url_rewriter(task, submitter, backend, storage="s")
    for url, direction in (("/mine/a", "input"), ("/other/b", "output")):
        expected = hooks.rewrite_url(url, direction, task, submitter, backend, storage="s")
        assert rewrite(url, direction) == expected
    assert rewrite("/mine/a", "input") == "newer:/mine/a"
    assert rewrite("/other/b", "output") == "older:/other/b:output:s"
    pm.register(Wrapper(), name="wrapper")
    rewrite = hooks.url_rewriter(task, submitter, backend, storage="s")
    assert rewrite("/mine/a", "input") == "wrapped:newer:/mine/a"


def test_task_rewriters_answer_first_then_the_url_hooks() -> None:
    """``tes_url_rewriter`` is asked once per task; the rewriters it returns answer each URL
    first (the newest plugin first), then ``tes_rewrite_url``; a lone rewriter is used as
    it is; when every plugin declines the task there is nothing to call."""
    from types import SimpleNamespace
    from typing import Any

    import pluggy

    from tes_core import hookimpl, hookspecs
    from tes_core.plugins import Hooks
    from tes_core.submitter import Submitter

    asked: list[str] = []

    class Mine:
        @hookimpl
        def tes_url_rewriter(self, task, submitter):
            asked.append("mine")
            if submitter.name != "mine":
                return None
            return lambda url, direction: f"mine:{url}" if url.startswith("/mine/") else None

    class Later:
        @hookimpl
        def tes_url_rewriter(self, storage):
            asked.append("later")
            return lambda url, direction: f"later:{url}:{storage}" if "/x" in url else None

    class PerUrl:
        @hookimpl
        def tes_rewrite_url(self, url, direction):
            return f"per-url:{url}:{direction}"

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    hooks = Hooks(pm)
    backend: Any = SimpleNamespace(name="local", settings=None)
    task: dict = {"inputs": []}
    pm.register(Mine(), name="mine")
    assert hooks.has_submitter_hooks()
    assert hooks.url_rewriter(task, Submitter("other"), backend, storage="s") is None
    lone = hooks.url_rewriter(task, Submitter("mine"), backend, storage="s")
    assert lone is not None and lone("/mine/a", "input") == "mine:/mine/a"
    assert lone.__qualname__.startswith("test_task_rewriters"), "no wrapper around it"
    pm.register(Later(), name="later")
    pm.register(PerUrl(), name="per-url")
    asked.clear()
    rewrite = hooks.url_rewriter(task, Submitter("mine"), backend, storage="s")
    assert asked == ["later", "mine"]
    assert rewrite is not None
    assert rewrite("/mine/x", "input") == "later:/mine/x:s"
    assert rewrite("/mine/a", "input") == "mine:/mine/a"
    assert rewrite("/other/a", "output") == "per-url:/other/a:output"
    assert asked == ["later", "mine"], "asked once per task, not per URL"


def test_detection_and_injection_call_plugins_as_pluggy_does() -> None:
    """``detect_submitter`` and ``inject_inputs`` (called directly) answer what pluggy's hook
    calls answer: detection takes the newest plugin's first answer (``tryfirst`` ahead of
    it), injection gathers every plugin's inputs newest first, each plugin gets only its
    arguments; with a wrapper registered they go through pluggy."""
    from types import SimpleNamespace
    from typing import Any

    import pluggy

    from tes_core import hookimpl, hookspecs
    from tes_core.config import Settings
    from tes_core.plugins import Hooks
    from tes_core.submitter import Submitter

    class Older:
        @hookimpl
        def tes_detect_submitter(self, task, settings):
            return Submitter("older", workflow_id=str(settings.backend))

        @hookimpl
        def tes_inject_inputs(self, task, storage):
            return [{"path": f"/older/{storage}"}]

    class Newer:
        @hookimpl
        def tes_detect_submitter(self, task):
            return Submitter("newer") if task.get("name") == "mine" else None

        @hookimpl
        def tes_inject_inputs(self, submitter):
            return [{"path": f"/newer/{submitter.name}"}] if submitter else None

    class Eager:
        @hookimpl(tryfirst=True)
        def tes_detect_submitter(self, task):
            return Submitter("eager") if task.get("name") == "eager" else None

    class Wrapper:
        @hookimpl(wrapper=True)
        def tes_detect_submitter(self, task):
            result = yield
            return Submitter(f"wrapped-{result.name}") if result else None

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    hooks = Hooks(pm)
    settings = Settings.from_env({})
    backend: Any = SimpleNamespace(name="local", settings=settings)
    assert hooks.detect_submitter({"name": "mine"}, settings) is None
    assert hooks.inject_inputs({}, None, backend, storage="s") == []
    for plugin, name in ((Older(), "older"), (Eager(), "eager"), (Newer(), "newer")):
        pm.register(plugin, name=name)
    for task in ({"name": "mine"}, {"name": "other"}, {"name": "eager"}):
        through_pluggy = pm.hook.tes_detect_submitter(task=task, settings=settings)
        assert hooks.detect_submitter(task, settings) == through_pluggy
    assert hooks.detect_submitter({"name": "mine"}, settings) == Submitter("newer")
    assert hooks.detect_submitter({"name": "eager"}, settings) == Submitter("eager")
    assert hooks.detect_submitter({}, settings) == Submitter("older", workflow_id="local")
    assert hooks.inject_inputs({}, Submitter("x"), backend, storage="s") == [
        {"path": "/newer/x"}, {"path": "/older/s"}]
    assert hooks.inject_inputs({}, None, backend, storage="s") == [{"path": "/older/s"}]
    pm.register(Wrapper(), name="wrapper")
    assert hooks.detect_submitter({"name": "mine"}, settings) == Submitter("wrapped-newer")


def test_the_root_workflow_id_becomes_a_tag(hooked_server: ServerProcess) -> None:
    stored = _create(
        hooked_server.url,
        {
            "name": "align",
            "tags": {"plugtest-workflow": "wf-2", "plugtest-root": "wf-root"},
            "executors": [{"image": "alpine", "command": ["true"]}],
        },
    )

    assert stored["tags"]["ms-submitter-workflow-id"] == "wf-2"
    assert stored["tags"]["ms-submitter-root-workflow-id"] == "wf-root"


@pytest.mark.parametrize(
    ("direction", "label", "key"),
    [("inputs", "inputs[1].url", "inputs.1.url"), ("outputs", "outputs[0].url", "outputs.0.url")],
)
def test_a_rewrite_the_plugin_cannot_do_is_a_400_naming_the_field(
    hooked_server: ServerProcess, direction: str, label: str, key: str
) -> None:
    def count() -> int:
        listed = requests.get(f"{hooked_server.url}/tasks", params={"page_size": 2047}, timeout=10)
        return len(listed.json()["tasks"])

    before = count()
    items = [{"path": "/in/a", "url": "plugtest://a"}, {"path": "/in/b", "url": "needs-storage://b"}]
    task = {
        "tags": {"plugtest-workflow": "wf-3"},
        "executors": [{"image": "alpine", "command": ["true"]}],
        direction: items if direction == "inputs" else items[1:],
    }
    response = requests.post(f"{hooked_server.url}/tasks", json=task, timeout=10)

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["msg"] == f"{label}: configure TES_STORAGE_CONNECTION_STRING"
    assert body["errors"] == {key: ["configure TES_STORAGE_CONNECTION_STRING"]}
    assert count() == before, "nothing is stored"


STORAGE_PROVIDER = '''


class PlugtestStore:
    """Just enough of tes_core.blobstore.BlobStore for the rewrite hook above."""

    def __init__(self, account_url):
        self.account_name = "plugtest"
        self.account_url = account_url.rstrip("/")

    def blob_url(self, container, blob):
        return f"{self.account_url}/{container}/{blob}"


@hookimpl
def tes_blob_storage(settings):
    if not settings.storage_account_url.startswith("https://plugtest.example/"):
        return None
    return PlugtestStore(settings.storage_account_url)
'''


def test_the_storage_a_plugin_builds_reaches_the_submitter_hooks(tmp_path: Path) -> None:
    site = Site(tmp_path / "site")
    site.add("tes-plugtest", "1.2.3", {"plugtest": "plugtest_hooks"},
             plugtest_hooks=PARKED_BACKEND.format(backend="plugtest") + SUBMITTER_HOOKS
             + STORAGE_PROVIDER)
    env = site.env(
        tmp_path / "data",
        TES_BACKEND="plugtest",
        TES_STORAGE_ACCOUNT_URL="https://plugtest.example/acct",
    )
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        stored = _create(
            server.url,
            {
                "tags": {"plugtest-workflow": "wf-4"},
                "inputs": [{"path": "/in/b", "url": "needs-storage://dir/b.txt"}],
                "executors": [{"image": "alpine", "command": ["true"]}],
            },
        )
    finally:
        server.stop()

    assert stored["inputs"][0]["url"] == "https://plugtest.example/acct/plugtest/dir/b.txt"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TES_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true"),
        ("TES_STORAGE_ACCOUNT_URL", "https://acct.blob.core.windows.net"),
    ],
)
def test_storage_settings_without_a_storage_plugin_stop_start_up(
    site: Site, tmp_path: Path, variable: str, value: str
) -> None:
    # tes-azure may be installed here: disabled, it is as good as absent.
    result = serve_must_fail(site, tmp_path, TES_DISABLED_PLUGINS="azure", **{variable: value})

    assert f"{variable} is set but no installed plugin provides blob storage" in result.stderr
    assert "pip install tes-azure" in result.stderr
    assert value not in result.stderr + result.stdout


def test_an_application_insights_string_without_an_exporter_stops_start_up(
    site: Site, tmp_path: Path
) -> None:
    result = serve_must_fail(
        site, tmp_path, TES_DISABLED_PLUGINS="azure",
        TES_APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=0000-secret",
    )

    assert "no installed plugin exports to Azure Monitor" in result.stderr
    assert "pip install 'tes-azure[monitor]'" in result.stderr
    assert "0000-secret" not in result.stderr + result.stdout


TELEMETRY_EXPORTER = '''
from pathlib import Path

import flask

from tes_core import hookimpl


@hookimpl
def tes_configure_telemetry(settings):
    target = settings.plugin_setting("plugtest_telemetry_file")
    if not target:
        return None

    if getattr(flask.Flask, "plugtest_instrumented", False):
        return "plugtest-exporter"  # called again for another app: started already

    class Instrumented(flask.Flask):
        plugtest_instrumented = True
        # What OpenTelemetry's Flask instrumentation does: replace the class, so that
        # only apps built afterwards are traced.
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with open(target, "a") as marker:
                marker.write(f"instrumented app for {settings.service_name}\\n")

    flask.Flask = Instrumented
    return "plugtest-exporter"
'''


def test_a_telemetry_exporter_starts_before_the_app_is_built(site: Site, tmp_path: Path) -> None:
    site.add("tes-plugtel", "0.1", {"plugtel": "plugtest_telemetry"},
             plugtest_telemetry=TELEMETRY_EXPORTER)
    marker = tmp_path / "exporter-started"
    env = site.env(tmp_path / "data", TES_PLUGTEST_TELEMETRY_FILE=str(marker),
                   TES_SERVICE_NAME="tel-test")
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        assert requests.get(f"{server.url}/service-info", timeout=10).ok
    finally:
        server.stop()
    # One line per app built (tes-server serve builds one to run migrations first).
    lines = marker.read_text().splitlines()
    assert lines and set(lines) == {"instrumented app for tel-test"}, lines
    assert "exporting telemetry to plugtest-exporter" in server.log()


SECRET_RESOLVER = '''
from tes_core.config import ConfigError

VAULT = {"contact": "https://help.example/secret-contact", "name": "resolved-name"}


def resolve(references):
    found = {}
    for variable, value in references.items():
        if not value.startswith("@Example.Vault("):
            continue
        key = value[len("@Example.Vault("):-1]
        if key not in VAULT:
            raise ConfigError(f"{variable}: no secret {key!r} in the example vault")
        found[variable] = VAULT[key]
    return found
'''


def test_secret_references_are_resolved_by_the_plugin_declaring_them(
    site: Site, tmp_path: Path
) -> None:
    site.add("tes-plugvault", "0.1", {}, groups={"tes.secrets": {"example": "plugvault:resolve"}},
             plugvault=SECRET_RESOLVER)
    env = site.env(tmp_path / "data", TES_CONTACT_URL="@Example.Vault(contact)",
                   TES_SERVICE_NAME="@Example.Vault(name)")
    server = ServerProcess(tmp_path / "data", env).start()
    try:
        info = requests.get(f"{server.url}/service-info", timeout=10).json()
    finally:
        server.stop()
    assert info["contactUrl"] == "https://help.example/secret-contact"
    assert info["name"] == "resolved-name"


def test_a_secret_reference_nobody_resolves_stops_start_up(site: Site, tmp_path: Path) -> None:
    site.add("tes-plugvault", "0.1", {}, groups={"tes.secrets": {"example": "plugvault:resolve"}},
             plugvault=SECRET_RESOLVER)

    missing = serve_must_fail(site, tmp_path, TES_CONTACT_URL="@Example.Vault(nope)")
    unknown = serve_must_fail(site, tmp_path, TES_CONTACT_URL="@Other.Store(contact)")

    assert "TES_CONTACT_URL: no secret 'nope' in the example vault" in missing.stderr
    assert ("TES_CONTACT_URL holds a secret reference (@Other.Store) that no installed plugin "
            "resolves") in unknown.stderr
