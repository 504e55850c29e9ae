"""The kubelet of the fake API: moves Pods (and their Jobs) through their lifecycles.

Containers run for real on this machine where they can: each one in a bubblewrap sandbox
with the pod's volumes bound at their mount paths and the session's temporary folder
(where the tests' ``file://`` inputs and outputs live) at its own path (a PVC is a
folder per claim, a ``subPath`` a folder inside it, a ConfigMap volume its keys as
files), the host's
``/usr`` standing in for the image. So ``tes-filetransfer`` really stages and uploads and
executors really read inputs and write outputs. The coordinator's pod runs the real
``tes-aks-coordinator`` with ``KUBECONFIG`` pointing at the fake.

Images named ``sim/...`` ask for what a cluster does to a pod instead:

==========================  ======================================================
``sim/no-such-image...``    stays Pending: ImagePullBackOff naming the image
``sim/oom``                 killed: OOMKilled, exit code 137
``sim/evict``               evicted (a spot node taken back): DisruptionTarget
``sim/hang``                runs until deleted
``sim/crash``               exits 2 at once with a Python traceback in its log
==========================  ======================================================

and a pod asking for ``nvidia.com/gpu`` stays Pending, Unschedulable ("Insufficient
nvidia.com/gpu"), since none of the fake's three nodes has one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fakekube import FakeKube, now

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
ETC = (
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
)


class Kubelet:
    """Runs the pods of a :class:`FakeKube`; :meth:`start` watches in a thread."""

    def __init__(
        self, fake: FakeKube, root: Path, kubeconfig: Path, run_coordinator: bool = True
    ) -> None:
        self.fake = fake
        self.root = root
        self.kubeconfig = kubeconfig
        self.run_coordinator = run_coordinator
        self._seen: set[str] = set()
        self._stop = threading.Event()

    def start(self) -> Kubelet:
        """Watch for new pods in a background thread."""
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pod in self.fake.find("Pod"):
                uid = pod["metadata"]["uid"]
                if uid in self._seen or (pod.get("status") or {}).get("phase") != "Pending":
                    continue
                self._seen.add(uid)
                threading.Thread(target=self._run_pod, args=(pod,), daemon=True).start()
            time.sleep(0.05)

    # -- one pod -------------------------------------------------------------------

    def _set(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.fake.update("Pod", meta["namespace"], meta["name"], {"status": status})

    def _run_pod(self, pod: dict[str, Any]) -> None:
        containers = pod["spec"]["containers"]
        role = pod["metadata"]["labels"].get("tes.ga4gh.org/role")
        if role == "coordinator" and not self.run_coordinator:
            return
        if any(
            "nvidia.com/gpu" in ((c.get("resources") or {}).get("limits") or {}) for c in containers
        ):
            return self._set(
                pod,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. "
                            "preemption: 0/3 nodes are available: 3 No preemption victims "
                            "found for incoming pod.",
                        }
                    ],
                },
            )
        for container in containers:
            if container["image"].startswith("sim/no-such-image"):
                return self._set(
                    pod,
                    {
                        "phase": "Pending",
                        "containerStatuses": [
                            _container_status(
                                c,
                                {
                                    "waiting": {
                                        "reason": "ImagePullBackOff",
                                        "message": f'Back-off pulling image "{c["image"]}"',
                                    }
                                }
                                if c is container
                                else {"waiting": {"reason": "ContainerCreating"}},
                            )
                            for c in containers
                        ],
                    },
                )
        started = now()
        self._set(
            pod,
            {
                "phase": "Running",
                "startTime": started,
                "containerStatuses": [
                    _container_status(c, {"running": {"startedAt": started}}, ready=True)
                    for c in containers
                ],
            },
        )
        if containers[0]["image"] == "sim/evict":
            return self._evict(pod, started)
        scratch = Path(tempfile.mkdtemp(prefix="pod-", dir=self.root))
        threads = [
            threading.Thread(
                target=self._run_container,
                args=(pod, container, role, scratch, started),
                daemon=True,
            )
            for container in containers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._finish(pod)
        return None

    def _run_container(
        self, pod: dict[str, Any], container: dict[str, Any], role: str, scratch: Path, started: str
    ) -> None:
        image = container["image"]
        meta = pod["metadata"]
        if image == "sim/hang":
            while self.fake.get("Pod", meta["namespace"], meta["name"]) is not None:
                time.sleep(0.05)
            return None
        if image == "sim/oom":
            return self._end(pod, container, 137, "OOMKilled", "", started)
        if image == "sim/crash":
            return self._end(
                pod,
                container,
                2,
                "Error",
                "Traceback (most recent call last):\nRuntimeError: boom\n",
                started,
            )
        if image == "sim/noshell" and container["command"][0] == "/bin/sh":
            return self._end(
                pod,
                container,
                128,
                "StartError",
                "",
                started,
                message=(
                    "failed to create containerd task: failed to create shim task: OCI runtime "
                    "create failed: runc create failed: unable to start container process: exec: "
                    '"/bin/sh": stat /bin/sh: no such file or directory: unknown'
                ),
            )
        if role == "coordinator":
            code = self._coordinator(pod, container)
        else:
            code = self._sandbox(pod, container, scratch)
        if code is None:
            return None  # the pod was deleted meanwhile
        return self._end(pod, container, code, "Completed" if code == 0 else "Error", None, started)

    def _log_key(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, str, str]:
        meta = pod["metadata"]
        return meta["namespace"], meta["name"], container["name"]

    def _end(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        code: int,
        reason: str,
        output: str | None,
        started: str,
        message: str = "",
    ) -> None:
        """Record one container's end (and its log, unless it was streamed)."""
        meta = pod["metadata"]
        with self.fake.lock:
            current = self.fake.get("Pod", meta["namespace"], meta["name"])
            if current is None:
                return  # deleted meanwhile
            if output is not None:
                self.fake.logs[self._log_key(pod, container)] = output
            terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now(),
            }
            if message:
                terminated["message"] = message
            statuses = [
                _container_status(c, {"terminated": terminated})
                if c["name"] == container["name"]
                else c
                for c in current["status"]["containerStatuses"]
            ]
            self._set(pod, {"containerStatuses": statuses})

    def _finish(self, pod: dict[str, Any]) -> None:
        """Every container ended: the pod's phase and its Job's status."""
        meta = pod["metadata"]
        current = self.fake.get("Pod", meta["namespace"], meta["name"])
        if current is None:
            return
        codes = [
            (c["state"].get("terminated") or {}).get("exitCode", 1)
            for c in current["status"]["containerStatuses"]
        ]
        self._set(pod, {"phase": "Succeeded" if not any(codes) else "Failed"})
        self._job_ended(pod, succeeded=not any(codes))

    def _job_ended(self, pod: dict[str, Any], succeeded: bool) -> None:
        meta = pod["metadata"]
        job = meta["labels"].get("job-name")
        if job:
            kind = "Complete" if succeeded else "Failed"
            self.fake.update(
                "Job",
                meta["namespace"],
                job,
                {
                    "status": {
                        "active": 0,
                        "succeeded" if succeeded else "failed": 1,
                        "completionTime": now(),
                        "conditions": [
                            {
                                "type": kind,
                                "status": "True",
                                "reason": "" if succeeded else "BackoffLimitExceeded",
                            }
                        ],
                    }
                },
            )

    def _evict(self, pod: dict[str, Any], started: str) -> None:
        """A spot node taken back: every container killed, the pod Failed and Evicted."""
        ended = {
            "terminated": {
                "exitCode": 137,
                "reason": "Error",
                "startedAt": started,
                "finishedAt": now(),
            }
        }
        self._set(
            pod,
            {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: spot node preempted.",
                "conditions": [
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "TerminationByKubelet",
                        "message": "spot VM evicted",
                    }
                ],
                "containerStatuses": [
                    _container_status(c, ended) for c in pod["spec"]["containers"]
                ],
            },
        )
        self._job_ended(pod, succeeded=False)

    def _coordinator(self, pod: dict[str, Any], container: dict[str, Any]) -> int | None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            **{item["name"]: item["value"] for item in container.get("env") or ()},
        }
        command = [str(VENV_BIN / container["command"][0]), *container["command"][1:]]
        return self._process(pod, container, command, env)

    def _process(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        command: list[str],
        env: dict[str, str],
    ) -> int | None:
        """Run one container's process; its output goes to the pod log as it comes, as
        the kubelet's does (both streams in one log). ``None`` if the pod was deleted
        first (the process got SIGTERM, as the kubelet sends)."""
        meta = pod["metadata"]
        key = self._log_key(pod, container)
        self.fake.logs[key] = ""
        with subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as proc:
            threading.Thread(
                target=self._terminate_when_deleted,
                args=(proc, meta["namespace"], meta["name"]),
                daemon=True,
            ).start()
            assert proc.stdout is not None
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
                with self.fake.lock:
                    self.fake.logs[key] += chunk.decode("utf-8", "replace")
            code = proc.wait(timeout=600)
        if self.fake.get("Pod", meta["namespace"], meta["name"]) is None:
            return None
        return code

    def _terminate_when_deleted(self, proc: subprocess.Popen, namespace: str, name: str) -> None:
        while proc.poll() is None:
            if self.fake.get("Pod", namespace, name) is None:
                proc.terminate()
                return
            time.sleep(0.05)

    def _sandbox(self, pod: dict[str, Any], container: dict[str, Any], scratch: Path) -> int | None:
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or ()}
        binds: list[str] = []
        for mount in sorted(
            container.get("volumeMounts") or (), key=lambda m: m["mountPath"].count("/")
        ):
            source = self._volume_path(namespace, volumes[mount["name"]], scratch)
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            flag = "--ro-bind" if mount.get("readOnly") else "--bind"
            binds += [flag, str(source), mount["mountPath"]]
        command = [
            "bwrap",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--tmpfs",
            "/etc",
            "--tmpfs",
            "/tmp",
            *[arg for name in ETC for arg in ("--ro-bind-try", name, name)],
            "--ro-bind",
            str(REPO),
            str(REPO),
            "--ro-bind",
            sys.base_prefix,
            sys.base_prefix,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # /tmp's tmpfs comes first: the checkout or the test's folders may be in /tmp
            "--bind",
            str(self.root.parent),
            str(self.root.parent),
            "--die-with-parent",
            *binds,
            "--setenv",
            "PATH",
            f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        ]
        for item in container.get("env") or ():
            command += ["--setenv", item["name"], item["value"]]
        if container.get("workingDir"):
            command += ["--chdir", container["workingDir"]]
        command += container["command"]
        return self._process(pod, container, command, {"PATH": f"{VENV_BIN}:/usr/bin:/bin"})

    def _volume_path(self, namespace: str, volume: dict[str, Any], scratch: Path) -> Path:
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            path = self.root / "volumes" / namespace / claim
            path.mkdir(parents=True, exist_ok=True)
            return path
        if "emptyDir" in volume:  # one folder per pod, shared by its containers
            folder = scratch / volume["name"]
            folder.mkdir(exist_ok=True)
            return folder
        if "configMap" in volume:
            source = self.fake.get("ConfigMap", namespace, volume["configMap"]["name"])
            folder = scratch / volume["name"]
            folder.mkdir(exist_ok=True)
            data = (source or {}).get("data") or {}
            for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (folder / item["path"]).write_text(data.get(item["key"], ""))
            return folder
        raise ValueError(f"volume {json.dumps(volume)} is not simulated")


def _container_status(
    container: dict[str, Any], state: dict[str, Any], ready: bool = False
) -> dict[str, Any]:
    """A ``containerStatuses`` entry of ``container`` in ``state``."""
    return {
        "name": container["name"],
        "image": container["image"],
        "ready": ready,
        "restartCount": 0,
        "state": state,
    }
