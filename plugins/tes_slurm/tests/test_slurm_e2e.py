"""End to end on the real single-node Slurm of scripts/slurm-services.sh.

A real ``tes-server serve`` with ``TES_BACKEND=slurm`` submits each task as a batch job
that runs the real ``tes-runner`` with Docker on the node. Skipped where that Slurm does
not run (``TES_TEST_SLURM`` comes from the services' env.sh) or tes-runner is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tes_slurm")
servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

if not os.environ.get("TES_TEST_SLURM"):
    pytest.skip("no test Slurm (source $TES_SERVICES_DIR/env.sh after scripts/test-services.sh)",
                allow_module_level=True)
RUNNER = Path(sys.executable).parent / "tes-runner"
if not RUNNER.exists():
    pytest.skip("tes-runner is not installed in this environment", allow_module_level=True)

IMAGE = "busybox:latest"


def slurm(*argv: str) -> str:
    """Run a Slurm command here (the tests' view of the cluster)."""
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def prologue() -> str:
    """Shell lines for the job scripts: the test venv's tools and the Docker socket."""
    lines = [f"export PATH={RUNNER.parent}:/usr/local/bin:/usr/bin:/bin"]
    for name in ("DOCKER_HOST", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"):
        if os.environ.get(name):
            lines.append(f"export {name}={os.environ[name]}")
    return "\n".join(lines)


def slurm_env(data: Path, **extra: str) -> dict[str, str]:
    """A server environment for the Slurm backend with its folders under ``data``."""
    settings = {
        "TES_BACKEND": "slurm",
        "TES_RECONCILE_INTERVAL": "1",
        "TES_SLURM_WORKDIR": str(data / "slurm-tasks"),
        "TES_SLURM_RUNNER": str(RUNNER),
        "TES_SLURM_PROLOGUE": prologue(),
        "TES_SLURM_RUNTIME": "docker",
        "TES_SLURM_JOB_PREFIX": f"tes{os.getpid()}-",
        "TES_SLURM_PREEMPTIBLE_PARTITION": "spot",
    }
    return servers.server_env(data, **{**settings, **extra})


def cancel_jobs(prefix: str) -> None:
    """scancel every job whose name starts with ``prefix`` (what a failed test left)."""
    listing = slurm("squeue", "-h", "-o", "%i %j")
    ids = [line.split()[0] for line in listing.splitlines()
           if len(line.split()) == 2 and line.split()[1].startswith(prefix)]
    if ids:
        subprocess.run(["scancel", *ids], check=False, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("slurm-server")
    proc = servers.ServerProcess(data, slurm_env(data)).start()
    try:
        yield proc
    finally:
        proc.stop()
        cancel_jobs(f"tes{os.getpid()}-")


def post(url: str, document: dict[str, Any]) -> str:
    answer = requests.post(f"{url}/tasks", json=document, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def task(*executors: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"executors": list(executors), **extra}


def sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "command": ["sh", "-c", script], **extra}


def jobs_named(prefix: str) -> list[str]:
    """Every job (sacct, all states) whose name starts with ``prefix``."""
    out = slurm("sacct", "-X", "-n", "-P", "-S", "now-1hour", "-o", "JobID,JobName")
    return [line.split("|")[0] for line in out.splitlines() if line.split("|")[-1].startswith(
        prefix)]


def wait_running_job(url: str, task_id: str) -> dict[str, Any]:
    return servers.wait_for_state(url, task_id, {"RUNNING"}, timeout=120, view="FULL")


# -- the tests ------------------------------------------------------------------------------


def test_inputs_executors_in_order_ignore_error_and_outputs(server, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("from a file\n")
    result = tmp_path / "out" / "result.txt"
    ok = post(server.url, task(
        sh("cat /in/a.txt /in/b.txt > /tmp/w/1.txt; echo first; echo to-err >&2"),
        sh("echo second >> /tmp/w/1.txt; exit 3", ignore_error=True),
        sh("cp /tmp/w/1.txt /out/result.txt; echo third"),
        inputs=[{"path": "/in/a.txt", "content": "inline\n"},
                {"path": "/in/b.txt", "url": f"file://{source}"}],
        outputs=[{"path": "/out/result.txt", "url": f"file://{result}"}],
        volumes=["/tmp/w"],
        resources={"cpu_cores": 1, "ram_gb": 0.5, "disk_gb": 1},
    ))
    failing = post(server.url, task(sh("echo before; exit 5"), sh("echo never")))

    done = servers.wait_for_state(server.url, ok, servers.TERMINAL, timeout=180, view="FULL")
    assert done["state"] == "COMPLETE", done
    attempt = done["logs"][-1]
    assert [log["exit_code"] for log in attempt["logs"]] == [0, 3, 0]
    assert [log["stdout"].strip() for log in attempt["logs"]] == ["first", "", "third"]
    assert attempt["logs"][0]["stderr"].strip() == "to-err"
    assert result.read_text() == "inline\nfrom a file\nsecond\n"
    assert attempt["outputs"][0]["url"] == f"file://{result}"
    job_id = attempt["metadata"]["slurm_job_id"]
    # The resources reached Slurm.
    shown = slurm("scontrol", "show", "job", job_id) if _in_squeue(job_id) else ""
    if shown:
        assert "MinTmpDiskNode=1G" in shown and "MinMemoryNode=512M" in shown

    bad = servers.wait_for_state(server.url, failing, servers.TERMINAL, timeout=180,
                                 view="FULL")
    assert bad["state"] == "EXECUTOR_ERROR", bad
    assert [log["exit_code"] for log in bad["logs"][-1]["logs"]] == [5]


def _in_squeue(job_id: str) -> bool:
    return bool(slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%i").strip())


def test_cancel_of_a_running_job_stops_it_and_removes_its_folder(server) -> None:
    task_id = post(server.url, task(sh("echo started; sleep 600")))
    running = wait_running_job(server.url, task_id)
    job_id = running["logs"][-1]["metadata"]["slurm_job_id"]
    folder = server.data_dir / "slurm-tasks" / task_id
    assert (folder / "status.json").exists()

    assert requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30).status_code == 200
    servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=90)
    state = slurm("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State").strip()
    assert state.startswith("CANCELLED"), state
    assert not folder.exists()


def test_a_job_cancelled_outside_tes_is_a_system_error(server) -> None:
    task_id = post(server.url, task(sh("sleep 600")))
    running = wait_running_job(server.url, task_id)
    job_id = running["logs"][-1]["metadata"]["slurm_job_id"]

    slurm("scancel", job_id)

    done = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=90,
                                  view="FULL")
    assert done["state"] == "SYSTEM_ERROR", done
    assert any("cancelled outside TES" in line
               for line in done["logs"][-1]["system_logs"]), done


def test_a_pending_job_shows_its_reason(server) -> None:
    task_id = post(server.url, task(
        sh("true"), resources={"backend_parameters": {"partition": "closed"}}))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = requests.get(f"{server.url}/tasks/{task_id}", params={"view": "FULL"},
                            timeout=10).json()
        lines = (seen.get("logs") or [{}])[-1].get("system_logs") or []
        if any("PartitionDown" in line for line in lines):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no pending reason in the task's logs: {seen}")
    assert seen["state"] == "QUEUED"
    assert "its partition is down" in " ".join(lines)
    assert requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=30).status_code == 200
    servers.wait_for_state(server.url, task_id, {"CANCELED"}, timeout=60)


def test_a_job_slurm_refuses_is_a_system_error_saying_why(server) -> None:
    task_id = post(server.url, task(sh("true"), resources={"cpu_cores": 64}))  # 8 CPUs here
    done = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=60,
                                  view="FULL")
    assert done["state"] == "SYSTEM_ERROR", done
    line = " ".join(done["logs"][-1]["system_logs"])
    assert "Slurm did not take the job" in line and "sbatch" in line, line


def test_a_job_over_its_time_limit_is_a_system_error(server) -> None:
    task_id = post(server.url, task(
        sh("echo working; sleep 600"), resources={"backend_parameters": {"time_limit": "1"}}))
    # Slurm counts limits in minutes and checks them every 30 s or so.
    done = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=240,
                                  view="FULL")
    assert done["state"] == "SYSTEM_ERROR", done
    lines = done["logs"][-1]["system_logs"]
    assert any("time limit" in line and "TIMEOUT" in line for line in lines), lines


def test_a_preempted_job_runs_again_as_a_new_attempt(server) -> None:
    task_id = post(server.url, task(
        sh("sleep 8; echo finished"), resources={"preemptible": True, "cpu_cores": 8}))
    running = wait_running_job(server.url, task_id)
    first = running["logs"][-1]["metadata"]["slurm_job_id"]
    assert "spot" in slurm("squeue", "-h", "-j", first, "-o", "%P")
    # A job of the higher-priority partition wants the whole node: Slurm preempts ours.
    slurm("sbatch", "-p", "debug", "-c", "8", "-o", "/dev/null", "--wrap", "sleep 3")

    done = servers.wait_for_state(server.url, task_id, servers.TERMINAL, timeout=180,
                                  view="FULL")
    assert done["state"] == "COMPLETE", done
    assert len(done["logs"]) == 2, done["logs"]
    assert any(f"Slurm preempted job {first}" in line
               for line in done["logs"][-1].get("system_logs", [])), done["logs"]
    assert done["logs"][-1]["metadata"]["slurm_job_id"] != first
    assert done["logs"][-1]["logs"][0]["stdout"].strip() == "finished"
    states = slurm("sacct", "-X", "-n", "-P", "-j", first, "-o", "State").strip()
    assert states == "PREEMPTED", states


def test_bad_backend_parameters_are_refused_naming_the_field(server) -> None:
    for key, value in [("time_limit", "1\n#SBATCH --uid=0"), ("partition", "a b"),
                       ("gres", "gpu:$(reboot)"), ("qos", "")]:
        answer = requests.post(f"{server.url}/tasks", timeout=10, json=task(
            sh("true"), resources={"backend_parameters": {key: value}}))
        if value == "":
            assert answer.status_code == 200, answer.text  # empty: not asked for
            requests.post(f"{server.url}/tasks/{answer.json()['id']}:cancel", timeout=10)
            continue
        assert answer.status_code == 400, answer.text
        assert f"backend_parameters.{key}" in answer.text
    info = requests.get(f"{server.url}/service-info", timeout=10).json()
    assert {"partition", "account", "qos", "time_limit", "constraint", "gres"} <= set(
        info["tesResources_backend_parameters"])


def test_a_worker_killed_mid_flight_loses_no_job_and_starts_none_twice(tmp_path: Path) -> None:
    data = tmp_path / "server"
    prefix = f"tesk{os.getpid()}-"
    env = slurm_env(data, TES_SLURM_JOB_PREFIX=prefix)
    proc = servers.ServerProcess(data, env).start()
    try:
        ids = [post(proc.url, task(sh(f"sleep 8; echo done {n}"))) for n in range(4)]
        servers.wait_for_state(proc.url, ids[0], {"RUNNING"}, timeout=120)
        proc.kill()  # SIGKILL while jobs run (and later ones may be half submitted)
        proc.restart()
        for n, task_id in enumerate(ids):
            done = servers.wait_for_state(proc.url, task_id, servers.TERMINAL, timeout=180,
                                          view="FULL")
            assert done["state"] == "COMPLETE", done
            assert done["logs"][-1]["logs"][0]["stdout"].strip() == f"done {n}"
    finally:
        proc.stop()
        cancel_jobs(prefix)
    for task_id in ids:
        assert len(jobs_named(f"{prefix}{task_id}-")) == 1, task_id




def test_an_end_is_seen_between_passes_without_a_get(tmp_path: Path) -> None:
    # Passes every 300 s (one at start-up): the task list (which asks no backend) shows
    # COMPLETE well before the next pass only because the status watch saw the runner's end.
    data = tmp_path / "server"
    env = slurm_env(data, TES_RECONCILE_INTERVAL="300",
                    TES_SLURM_JOB_PREFIX=f"tesw{os.getpid()}-")
    proc = servers.ServerProcess(data, env).start()
    try:
        task_id = post(proc.url, task(sh("echo watched")))
        deadline = time.monotonic() + 150  # half the interval: generous, and still no pass
        while True:
            listed = requests.get(f"{proc.url}/tasks", params={"view": "MINIMAL"}, timeout=30)
            states = {t["id"]: t["state"] for t in listed.json().get("tasks", [])}
            if states.get(task_id) in servers.TERMINAL:
                break
            assert time.monotonic() < deadline, f"not ended before the next pass: {states}"
            time.sleep(0.5)
        assert states[task_id] == "COMPLETE"
        done = requests.get(f"{proc.url}/tasks/{task_id}", params={"view": "FULL"}, timeout=30)
        assert done.json()["logs"][-1]["logs"][0]["stdout"].strip() == "watched"
    finally:
        proc.stop()
        cancel_jobs(f"tesw{os.getpid()}-")


def readyz(proc: Any) -> requests.Response:
    root = proc.url.split("/ga4gh/", 1)[0]
    return requests.get(f"{root}/readyz", timeout=30)


def test_readyz_says_not_ready_while_slurm_does_not_answer(tmp_path: Path) -> None:
    # A second server whose SLURM_CONF is a copy we break and mend: the shared Slurm runs on.
    original = Path(os.environ["SLURM_CONF"])
    conf = tmp_path / "slurm.conf"
    conf.write_text(original.read_text())
    data = tmp_path / "server"
    env = slurm_env(data, SLURM_CONF=str(conf), TES_SLURM_JOB_PREFIX=f"tesr{os.getpid()}-")
    proc = servers.ServerProcess(data, env).start()
    try:
        ready = readyz(proc)
        assert ready.status_code == 200 and ready.json()["backend"] == "ok", ready.text
        lines = original.read_text().splitlines()
        conf.write_text("\n".join("SlurmctldPort=1" if line.startswith("SlurmctldPort=")
                                  else line for line in lines) + "\n")
        answer = _readyz_until(proc, 503)
        reason = answer.json()["errors"]["backend"][0]
        assert reason.startswith("Slurm does not answer on this machine: squeue"), reason
        assert "the backend cannot run tasks" in answer.json()["msg"]
        conf.write_text(original.read_text())
        _readyz_until(proc, 200)
    finally:
        proc.stop()


def _readyz_until(proc: Any, status: int, timeout: float = 60.0) -> requests.Response:
    """``/readyz``'s answer once its status is ``status`` (answers are reused for 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = readyz(proc)
        if answer.status_code == status or time.monotonic() > deadline:
            assert answer.status_code == status, answer.text
            return answer
        time.sleep(0.5)


def test_the_ssh_login_node_path(tmp_path: Path) -> None:
    if not os.environ.get("TES_TEST_SLURM_SSH"):
        pytest.skip("no test sshd")
    data = tmp_path / "server"
    env = slurm_env(
        data,
        TES_SLURM_SSH=os.environ["TES_TEST_SLURM_SSH"],
        TES_SLURM_SSH_PORT=os.environ["TES_TEST_SLURM_SSH_PORT"],
        TES_SLURM_SSH_KEY=os.environ["TES_TEST_SLURM_SSH_KEY"],
        TES_SLURM_SSH_KNOWN_HOSTS=os.environ["TES_TEST_SLURM_SSH_KNOWN_HOSTS"],
        TES_SLURM_JOB_PREFIX=f"tess{os.getpid()}-",
    )
    env.pop("SLURM_CONF", None)  # only the login node knows where Slurm is
    proc = servers.ServerProcess(data, env).start()
    try:
        assert proc.wait_for_output(lambda lines: any("on ssh root@127.0.0.1" in line
                                                      for line in lines)), proc.log()
        task_id = post(proc.url, task(sh("echo over ssh")))
        done = servers.wait_for_state(proc.url, task_id, servers.TERMINAL, timeout=180,
                                      view="FULL")
        assert done["state"] == "COMPLETE", done
        assert done["logs"][-1]["logs"][0]["stdout"].strip() == "over ssh"
        assert readyz(proc).json().get("backend") == "ok"  # the probe goes over ssh too
    finally:
        proc.stop()
        cancel_jobs(env["TES_SLURM_JOB_PREFIX"])


LIVE_MAX = 64 * 1024


def test_live_output_is_read_from_the_shared_folder_capped_and_never_through_a_link(
    tmp_path: Path,
) -> None:
    """``GET /tasks/{id}/executors/0/stdout`` of a running Slurm job: the end of what it
    printed (20 times ``TES_OUTPUT_LIVE_MAX``, which reaches the runner in task.json), the
    copy in ``work/logs`` within the cap; a link planted there is refused, never followed;
    an executor writing its own stdout file has no live output."""
    proc = servers.ServerProcess(
        tmp_path, slurm_env(tmp_path, TES_OUTPUT_LIVE_MAX=str(LIVE_MAX))
    ).start()
    expected = "".join(f"{i}\n" for i in range(1, 200_001))
    try:
        task_id = post(proc.url, task(
            sh("seq 1 200000; echo printed >&2; "
               "while [ ! -e /tes-wd/go ]; do sleep 0.1; done"),
            sh("echo own", stdout="/tes-wd/own.txt"),
        ))
        base = f"{proc.url}/tasks/{task_id}/executors/0"
        deadline = time.monotonic() + 180  # a guard against a hang, not a timed assertion
        while (got := requests.get(f"{base}/stderr", timeout=30)).text != "printed\n":
            assert got.status_code == 200, got.text
            assert time.monotonic() < deadline, got.text
            time.sleep(0.5)
        assert got.headers["X-Output-Next"] == str(len("printed\n"))
        end = requests.get(f"{base}/stdout", params={"tail": "5000"}, timeout=30)
        assert end.status_code == 200 and end.text == expected[-5000:], end.text[-100:]
        assert int(end.headers["X-Output-Next"]) == len(expected)
        logs = tmp_path / "slurm-tasks" / task_id / "work" / "logs"
        assert sum(p.stat().st_size for p in logs.glob("executor-0.stdout*")) <= LIVE_MAX

        secret = logs / "executor-0.stderr"
        secret.unlink()
        secret.symlink_to("/etc/passwd")
        planted = requests.get(f"{base}/stderr", timeout=30)
        assert planted.status_code == 404 and "root:" not in planted.text, planted.text
        assert "link" in planted.json()["msg"], planted.text

        own = requests.get(f"{proc.url}/tasks/{task_id}/executors/1/stdout",
                           params={"offset": "0"}, timeout=30)
        assert own.status_code == 404 and "/tes-wd/own.txt" in own.json()["msg"], own.text

        (tmp_path / "slurm-tasks" / task_id / "work" / "tes-wd" / "go").touch()
        done = servers.wait_for_state(proc.url, task_id, servers.TERMINAL, timeout=180,
                                      view="FULL")
        assert done["state"] == "COMPLETE", done
        assert expected.endswith(done["logs"][-1]["logs"][0]["stdout"])
    finally:
        proc.stop()
        cancel_jobs(f"tes{os.getpid()}-")
