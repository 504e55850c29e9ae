"""Real-container tests of the runner's runtimes (Docker, podman, bubblewrap).

Start the engines first: ``bash scripts/test-services.sh`` and
``source /tmp/tes-test-services/env.sh``. A runtime whose probe fails is
skipped with its reason, unless ``TES_REQUIRE_RUNTIMES`` (comma-separated
names, as CI sets it) lists it: then the test fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tes_runner.runtimes import (
    RUNTIMES,
    BubblewrapRuntime,
    CliRuntime,
    ContainerError,
    ContainerResult,
    ContainerRuntime,
    ContainerSpec,
    DockerRuntime,
    Mount,
    PodmanRuntime,
    RuntimeUnavailable,
    choose_runtime,
    select_runtime,
)
from tes_runner.runtimes._capture import TAIL_BYTES
from tes_runner.runtimes.cli import parse_engine_time

pytestmark = pytest.mark.timeout(180)

IMAGE = "alpine:latest"
REQUIRED = {n.strip() for n in os.environ.get("TES_REQUIRE_RUNTIMES", "").split(",") if n.strip()}
_PROBES: dict[str, str | None] = {}


def _probe(name: str) -> str | None:
    if name not in _PROBES:
        _PROBES[name] = RUNTIMES[name].probe()
    return _PROBES[name]


class Harness:
    """One runtime plus the container names a test used (removed afterwards)."""

    def __init__(self, runtime: ContainerRuntime) -> None:
        self.runtime = runtime
        self.names: list[str] = []

    @property
    def is_engine(self) -> bool:
        return isinstance(self.runtime, CliRuntime)

    def spec(self, command: list[str], **kwargs: object) -> ContainerSpec:
        name = f"tes-rt-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return ContainerSpec(name=name, image=IMAGE, command=command, **kwargs)  # type: ignore[arg-type]

    def run(self, command: list[str], **kwargs: object) -> ContainerResult:
        self.runtime.prepare_image(IMAGE)
        return self.runtime.run(self.spec(command, **kwargs))

    def cleanup(self) -> None:
        for name in self.names:
            self.runtime.remove(name)


@pytest.fixture(params=list(RUNTIMES))
def rt(request: pytest.FixtureRequest) -> Iterator[Harness]:
    name = request.param
    reason = _probe(name)
    if reason is not None:
        if name in REQUIRED:
            pytest.fail(f"runtime {name} is required (TES_REQUIRE_RUNTIMES) but unusable: {reason}")
        pytest.skip(f"{name} not usable here: {reason}")
    harness = Harness(RUNTIMES[name]())
    yield harness
    harness.cleanup()


def _engine_only(rt: Harness) -> None:
    if not rt.is_engine:
        pytest.skip(f"{rt.runtime.name} has no container engine for this")


# ------------------------------------------------------------------ running


def test_exit_codes(rt: Harness) -> None:
    ok = rt.run(["sh", "-c", "exit 0"])
    assert ok.exit_code == 0
    assert rt.run(["sh", "-c", "exit 3"]).exit_code == 3
    # 126/127 from the container's own command are results, not engine failures.
    assert rt.run(["sh", "-c", "exit 126"]).exit_code == 126
    assert rt.run(["sh", "-c", "exit 127"]).exit_code == 127
    assert ok.start_time.tzinfo is not None and ok.start_time.utcoffset().total_seconds() == 0
    assert ok.start_time <= ok.end_time <= datetime.now(UTC)


@pytest.mark.parametrize("command", ["/no/such/program", "no-such-program"])
def test_missing_command_exits_127_with_the_engines_message(
    rt: Harness, tmp_path: Path, command: str
) -> None:
    """Not the engine's failure: a result with 127 and the engine's words as stderr."""
    err = tmp_path / "err.txt"
    result = rt.run([command, "arg"], stderr_path=err)
    assert result.exit_code == 127
    assert result.not_started
    assert command in result.stderr_tail
    assert err.read_text() == result.stderr_tail
    assert "--help" not in result.stderr_tail


def test_command_that_is_not_executable_exits_126(rt: Harness, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "script").write_text("echo hi\n")
    (folder / "script").chmod(0o644)
    folder.chmod(0o755)
    result = rt.run(["/x/script"], mounts=[Mount(folder, "/x", read_only=True)])
    assert (result.exit_code, result.not_started) == (126, True)
    assert "/x/script" in result.stderr_tail
    # A folder is not executable either.
    assert rt.run(["/etc"]).exit_code == 126


def test_a_command_exiting_127_itself_started(rt: Harness) -> None:
    result = rt.run(["sh", "-c", "no-such-program-inside"])
    assert result.exit_code == 127
    assert not result.not_started


def test_stdout_stderr_tails_and_files(rt: Harness, tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    result = rt.run(
        ["sh", "-c", "echo to-out; echo to-err >&2; exit 2"], stdout_path=out, stderr_path=err
    )
    assert result.exit_code == 2
    assert out.read_text() == "to-out\n"
    assert err.read_text() == "to-err\n"
    assert result.stdout_tail == "to-out\n"
    assert result.stderr_tail == "to-err\n"


def test_tails_without_files(rt: Harness) -> None:
    result = rt.run(["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo end"])
    assert len(result.stdout_tail) == TAIL_BYTES
    assert result.stdout_tail.endswith("xxx\nend\n") or result.stdout_tail.endswith("xend\n")


def test_stdin_from_file(rt: Harness, tmp_path: Path) -> None:
    stdin = tmp_path / "in.txt"
    stdin.write_text("line one\nline two\n")
    result = rt.run(["sh", "-c", "wc -l; echo done"], stdin_path=stdin)
    assert result.exit_code == 0
    assert result.stdout_tail.split() == ["2", "done"]


def test_no_stdin_reads_eof(rt: Harness) -> None:
    result = rt.run(["sh", "-c", "cat; echo after"])
    assert result.exit_code == 0
    assert result.stdout_tail == "after\n"


def test_env_and_limits_accepted(rt: Harness) -> None:
    result = rt.run(
        ["sh", "-c", 'echo "$GREETING|$OTHER"'],
        env={"GREETING": "hello world", "OTHER": "a=b"},
        cpu_cores=1,
        ram_gb=0.25,
        labels={"tes.test": "yes"},
    )
    assert result.exit_code == 0
    assert result.stdout_tail == "hello world|a=b\n"


def test_env_exact_and_not_the_servers(
    rt: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor gets its own env, values intact, and nothing of this process's."""
    monkeypatch.setenv("TES_RT_TEST_SERVER_SECRET", "server-only")
    value = "x=y, spaces  and 'quotes' \\ $HOME"
    result = rt.run(["sh", "-c", 'printf "%s|" "$V"; env'], env={"V": value})
    assert result.exit_code == 0
    assert result.stdout_tail.startswith(f"{value}|")
    assert "server-only" not in result.stdout_tail


def test_env_value_with_line_break(rt: Harness) -> None:
    """bubblewrap carries any value; the engines' env files cannot, and say so."""
    env = {"MULTI": "line one\nline two=2"}
    if rt.is_engine:
        with pytest.raises(ContainerError, match="line break"):
            rt.run(["true"], env=env)
        return
    result = rt.run(["sh", "-c", 'printf "%s" "$MULTI"'], env=env)
    assert result.stdout_tail == env["MULTI"]


def test_invalid_env_name_is_container_error(rt: Harness) -> None:
    with pytest.raises(ContainerError, match="env name"):
        rt.run(["true"], env={"A=B": "x"})


def test_process_limit_and_no_new_privileges(rt: Harness) -> None:
    limited = Harness(type(rt.runtime)(pids_limit=77))  # type: ignore[call-arg]
    try:
        result = limited.run(["sh", "-c", (
            "cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
            "grep 'Max processes' /proc/self/limits; grep NoNewPrivs /proc/self/status"
        )])
    finally:
        limited.cleanup()
    assert result.exit_code == 0, result
    if rt.is_engine:
        assert result.stdout_tail.split()[0] == "77"
    else:
        assert result.stdout_tail.split()[2:4] == ["77", "77"]
    assert "NoNewPrivs:\t1" in result.stdout_tail


def test_workdir_not_under_a_mount(rt: Harness) -> None:
    result = rt.run(["pwd"], workdir="/work/deep/dir")
    assert result.stdout_tail.strip() == "/work/deep/dir"


def test_workdir_under_a_mount(rt: Harness, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "here.txt").write_text("x")
    result = rt.run(
        ["sh", "-c", "pwd; ls"],
        mounts=[Mount(tmp_path, "/data")],
        workdir="/data/sub",
    )
    assert result.stdout_tail.split() == ["/data/sub", "here.txt"]


def test_read_only_mount_rejects_writes(rt: Harness, tmp_path: Path) -> None:
    # Readable by bubblewrap's unprivileged sandbox user too (the runner's read-only
    # mounts live in the task's folder, which is handed to that user).
    tmp_path.chmod(0o755)
    (tmp_path / "input.txt").write_text("content\n")
    result = rt.run(
        ["sh", "-c", "cat /in/input.txt; echo new > /in/new.txt"],
        mounts=[Mount(tmp_path, "/in", read_only=True)],
    )
    assert result.exit_code != 0
    assert result.stdout_tail == "content\n"
    assert not (tmp_path / "new.txt").exists()


def test_read_write_mount_visible_on_host(rt: Harness, tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    (inputs / "a.txt").write_text("abc\n")
    # Mounts in any order: a file mounted inside a mounted folder (parents first).
    result = rt.run(
        ["sh", "-c", "cat /data/in/a.txt /data/b/b.txt > /data/out/result.txt"],
        mounts=[
            Mount(inputs / "a.txt", "/data/in/a.txt", read_only=True),
            Mount(outputs, "/data/out"),
            Mount(inputs, "/data/in", read_only=True),
            Mount(_write(tmp_path / "b.txt", "def\n"), "/data/b/b.txt", read_only=True),
        ],
    )
    assert result.exit_code == 0, result.stderr_tail
    assert (outputs / "result.txt").read_text() == "abc\ndef\n"


def test_a_mount_below_tmp_is_reachable(rt: Harness, tmp_path: Path) -> None:
    """bubblewrap made the missing folders between its private /tmp and a mount 0700 (root's),
    so its sandbox user could not reach an input at /tmp/<folder>/<name> (Toil's job store)."""
    tmp_path.chmod(0o755)
    (tmp_path / "f.txt").write_text("deep\n")
    result = rt.run(
        ["sh", "-c", "cat /tmp/deep/er/f.txt && touch /tmp/mine"],
        mounts=[Mount(tmp_path, "/tmp/deep/er", read_only=True)],
    )
    assert result.exit_code == 0, result.stderr_tail
    assert result.stdout_tail == "deep\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.timeout(120)
def test_big_output_does_not_deadlock(rt: Harness, tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    size = 5_000_000
    script = (
        f"(head -c {size} /dev/zero | tr '\\0' e >&2) & head -c {size} /dev/zero | tr '\\0' o; wait"
    )
    result = rt.run(["sh", "-c", script], stdout_path=out, stderr_path=err)
    assert result.exit_code == 0
    assert out.stat().st_size == size
    assert err.stat().st_size == size
    assert result.stdout_tail == "o" * TAIL_BYTES
    assert result.stderr_tail == "e" * TAIL_BYTES


def _run_in_thread(runtime: ContainerRuntime, spec: ContainerSpec) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target() -> None:
        try:
            box["result"] = runtime.run(spec)
        except BaseException as exc:  # reported by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_stop_from_another_thread(rt: Harness, tmp_path: Path) -> None:
    rt.runtime.prepare_image(IMAGE)
    spec = rt.spec(["sh", "-c", "touch /out/started; sleep 60"], mounts=[Mount(tmp_path, "/out")])
    thread, box = _run_in_thread(rt.runtime, spec)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, box
        time.sleep(0.05)
    began = time.monotonic()
    rt.runtime.stop(spec.name)
    thread.join(20)
    assert not thread.is_alive()
    assert "error" not in box, box.get("error")
    assert box["result"].exit_code != 0
    assert time.monotonic() - began < 15
    rt.runtime.stop(spec.name)  # stopping a finished container is quiet


def test_stop_while_the_engine_is_still_starting(rt: Harness) -> None:
    _engine_only(rt)
    rt.runtime.prepare_image(IMAGE)
    spec = rt.spec(["sleep", "60"])
    thread, box = _run_in_thread(rt.runtime, spec)
    deadline = time.monotonic() + 10
    while spec.name not in rt.runtime._active:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline and thread.is_alive(), box
        time.sleep(0.005)
    rt.runtime.stop(spec.name)  # the container may not exist yet: stop keeps trying
    thread.join(30)
    assert not thread.is_alive()
    assert box["result"].exit_code != 0


def test_stop_and_remove_unknown_names_are_quiet(rt: Harness) -> None:
    rt.runtime.stop("tes-rt-test-never-existed")
    rt.runtime.remove("tes-rt-test-never-existed")


def test_remove_soon_removes_in_the_background(rt: Harness) -> None:
    """Finished containers queued together go in one engine command; a name the engine
    does not know (already gone) does not keep the others, and flush waits for them."""
    _engine_only(rt)
    runtime = rt.runtime
    specs = [rt.spec(["true"]) for _ in range(3)]
    runtime.prepare_image(IMAGE)
    for spec in specs:
        assert runtime.run(spec).exit_code == 0
        assert runtime.attach(spec.name) is not None  # kept until removed (crash recovery)
    for name in ["tes-rt-test-never-existed", *(spec.name for spec in specs)]:
        runtime.remove_soon(name)
    assert runtime.flush(timeout=60)
    for spec in specs:
        assert runtime.attach(spec.name) is None


def test_memory_limit_kills_with_137(rt: Harness) -> None:
    if rt.runtime.limits_note:
        assert "ram_gb" in rt.runtime.limits_note
        pytest.skip(f"{rt.runtime.name}: {rt.runtime.limits_note}")
    result = rt.run(
        ["sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"],
        ram_gb=0.1,
    )
    assert result.exit_code == 137
    assert "survived" not in result.stdout_tail


# ------------------------------------------------------------------ images


def test_missing_image(rt: Harness) -> None:
    image = f"tes-no-such-image-{uuid.uuid4().hex[:8]}:1"
    if not rt.is_engine:
        lines = rt.runtime.prepare_image(image)
        assert any(image in line and "not pulled" in line for line in lines)
        return
    with pytest.raises(ContainerError) as info:
        rt.runtime.prepare_image(image)
    message = str(info.value)
    assert f"image '{image}'" in message and "could not be pulled" in message
    assert f"{rt.runtime.name} tag" in message
    # run() without prepare_image: the engine's own failure becomes a ContainerError.
    with pytest.raises(ContainerError):
        rt.runtime.run(ContainerSpec(name=rt.spec(["true"]).name, image=image, command=["true"]))


def test_present_images_are_cached(rt: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    _engine_only(rt)
    assert rt.runtime.prepare_image(IMAGE) == []

    def no_more_cli(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepare_image asked the engine again")

    monkeypatch.setattr(rt.runtime, "_cli", no_more_cli)
    assert rt.runtime.prepare_image(IMAGE) == []


# ------------------------------------------------------------------ attach


def test_attach_after_detached_start(rt: Harness, tmp_path: Path) -> None:
    runtime = rt.runtime
    if not isinstance(runtime, CliRuntime):
        assert runtime.attach("anything") is None
        return
    runtime.prepare_image(IMAGE)
    spec = rt.spec(["sh", "-c", "echo out-line; echo err-line >&2; sleep 1; exit 5"])
    args = runtime.build_run_args(spec)
    started = subprocess.run(
        [runtime.binary, args[0], "-d", *args[1:]], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    out = tmp_path / "stdout"
    result = runtime.attach(spec.name, stdout_path=out)
    assert result is not None
    assert result.exit_code == 5
    assert result.stdout_tail == "out-line\n"
    assert result.stderr_tail == "err-line\n"
    assert out.read_text() == "out-line\n"
    assert result.start_time.tzinfo is not None
    assert 0.5 < (result.end_time - result.start_time).total_seconds() < 30
    # A finished container can be attached again until it is removed.
    assert runtime.attach(spec.name).exit_code == 5  # type: ignore[union-attr]
    runtime.remove(spec.name)
    assert runtime.attach(spec.name) is None


def test_a_run_under_a_name_already_started_waits_for_that_container(
    rt: Harness, tmp_path: Path
) -> None:
    """A worker handing over may start an executor just after the next worker's recovery
    found no container: the second ``run`` must wait for the first container, not run the
    executor again nor fail the task."""
    _engine_only(rt)
    runtime = rt.runtime
    assert isinstance(runtime, CliRuntime)
    runtime.prepare_image(IMAGE)
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o777)
    mount = Mount(host_path=runs, container_path="/runs")
    spec = rt.spec(["sh", "-c", "echo run >> /runs/log; echo out-line; sleep 1; exit 3"],
                   mounts=[mount])
    args = runtime.build_run_args(spec)
    started = subprocess.run(
        [runtime.binary, args[0], "-d", *args[1:]], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    out = tmp_path / "stdout"
    result = runtime.run(ContainerSpec(**{**spec.__dict__, "stdout_path": out}))
    assert result.exit_code == 3
    assert result.stdout_tail == "out-line\n"
    assert out.read_text() == "out-line\n"
    assert (runs / "log").read_text() == "run\n", "the executor ran once"


def test_labels_reach_the_engine(rt: Harness) -> None:
    _engine_only(rt)
    runtime = rt.runtime
    assert isinstance(runtime, CliRuntime)
    runtime.prepare_image(IMAGE)
    spec = rt.spec(["true"], labels={"tes.task": "abc"})
    assert runtime.run(spec).exit_code == 0
    shown = subprocess.run(
        [runtime.binary, "container", "inspect", "--format", '{{index .Config.Labels "tes.task"}}',
         spec.name],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.stdout.strip() == "abc"


# ------------------------------------------------------------------ selection


def _fake_probes(monkeypatch: pytest.MonkeyPatch, **reasons: str | None) -> None:
    for name, reason in reasons.items():
        monkeypatch.setattr(RUNTIMES[name], "probe", classmethod(lambda cls, r=reason: r))


def test_select_auto_takes_the_first_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_probes(monkeypatch, docker="no engine", podman=None, bubblewrap=None)
    assert isinstance(select_runtime("auto"), PodmanRuntime)
    _fake_probes(monkeypatch, docker=None)
    assert isinstance(select_runtime(), DockerRuntime)
    _fake_probes(monkeypatch, docker="x", podman="y")
    assert isinstance(select_runtime("auto"), BubblewrapRuntime)
    # Why, for the ready line: the rule, and why each runtime before it was passed over.
    assert choose_runtime("auto").why == (
        "TES_LOCAL_RUNTIME=auto: the first of docker, podman, bubblewrap that works; "
        "not docker: x; not podman: y"
    )
    assert choose_runtime("bubblewrap").why == "TES_LOCAL_RUNTIME=bubblewrap"


def test_select_when_nothing_is_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_probes(monkeypatch, docker="d-reason", podman="p-reason", bubblewrap="b-reason")
    with pytest.raises(RuntimeUnavailable) as info:
        select_runtime("auto")
    message = str(info.value)
    assert message.startswith("No container runtime found: install and start Docker")
    for part in ("apt-get install docker.io", "podman", "apt-get install bubblewrap"):
        assert part in message
    assert "docker: d-reason; podman: p-reason; bubblewrap: b-reason" in message


def test_select_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_probes(monkeypatch, docker=None, podman="podman broke", bubblewrap=None)
    assert isinstance(select_runtime("bubblewrap"), BubblewrapRuntime)
    with pytest.raises(RuntimeUnavailable, match="podman broke"):
        select_runtime("podman")
    with pytest.raises(RuntimeUnavailable, match="unknown container runtime"):
        select_runtime("lxc")
    with pytest.raises(RuntimeUnavailable, match="did you mean 'podman'"):
        select_runtime("Podmann")


def test_real_probes_return_reason_or_none() -> None:
    for name in RUNTIMES:
        reason = _probe(name)
        assert reason is None or (isinstance(reason, str) and reason)


def test_parse_engine_time() -> None:
    parsed = parse_engine_time("2026-11-25T12:55:16.46528035Z")
    assert parsed == datetime(2026, 11, 25, 12, 55, 16, 465280, tzinfo=UTC)
    shifted = parse_engine_time("2026-11-25T13:55:16.5+01:00")
    assert shifted == datetime(2026, 11, 25, 12, 55, 16, 500000, tzinfo=UTC)
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time("") is None


# ------------------------------------------------------------------ docker's quick probe


def _socket_server(path: Path, answer: bytes) -> threading.Thread:
    """A Unix socket at ``path`` answering every connection with ``answer``."""
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        with server:
            for _ in range(4):
                conn, _ = server.accept()
                with conn:
                    conn.recv(4096)
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_docker_probe_pings_the_engine_socket() -> None:
    from tes_runner.runtimes.docker import engine_pings, engine_socket

    if _probe("docker") is not None:
        pytest.skip(f"docker not usable here: {_probe('docker')}")
    path = engine_socket()
    assert path is not None and engine_pings(path)
    assert DockerRuntime.probe() is None


def test_docker_probe_falls_back_to_the_cli_which_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tes_runner.runtimes.docker import engine_pings

    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    not_docker = tmp_path / "not-docker.sock"
    _socket_server(not_docker, b"HTTP/1.0 404 Not Found\r\n\r\nno such thing")
    assert not engine_pings(str(not_docker))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{not_docker}")
    reason = DockerRuntime.probe()  # the CLI asked too: it says what is wrong
    assert reason is not None and f"unix://{not_docker}" in reason
    assert not engine_pings(str(tmp_path / "absent.sock"))


def test_docker_probe_leaves_contexts_and_tcp_to_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tes_runner.runtimes.docker import DEFAULT_SOCKET, engine_socket

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert engine_socket() == "/run/user/1000/docker.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert engine_socket() == DEFAULT_SOCKET
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    assert engine_socket() is None
    monkeypatch.delenv("DOCKER_HOST")
    (tmp_path / "config.json").write_text('{"currentContext": "remote"}')
    assert engine_socket() is None
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    assert engine_socket() is None
