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
nvidia.com/gpu"), since the fake's one node has none.
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
ETC = ("/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
       "/etc/ssl", "/etc/ca-certificates", "/etc/alternatives")


class Kubelet:
    """Runs the pods of a :class:`FakeKube`; :meth:`start` watches in a thread."""

    def __init__(self, fake: FakeKube, root: Path, kubeconfig: Path,
                 run_coordinator: bool = True) -> None:
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
        container = pod["spec"]["containers"][0]
        image = container["image"]
        role = pod["metadata"]["labels"].get("tes.ga4gh.org/role")
        if role == "coordinator" and not self.run_coordinator:
            return
        limits = (container.get("resources") or {}).get("limits") or {}
        if "nvidia.com/gpu" in limits:
            return self._set(pod, {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. "
                           "preemption: 0/1 nodes are available: 1 No preemption victims "
                           "found for incoming pod."}]})
        if image.startswith("sim/no-such-image"):
            return self._set(pod, {"phase": "Pending", "containerStatuses": [{
                "name": container["name"], "image": image, "ready": False,
                "restartCount": 0, "state": {"waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}"'}}}]})
        started = now()
        self._set(pod, {"phase": "Running", "startTime": started, "containerStatuses": [{
            "name": container["name"], "image": image, "ready": True, "restartCount": 0,
            "state": {"running": {"startedAt": started}}}]})
        if image == "sim/hang":
            return None
        if image == "sim/evict":
            return self._end(pod, 137, "Error", "", started, evicted=True)
        if image == "sim/oom":
            return self._end(pod, 137, "OOMKilled", "", started)
        if image == "sim/crash":
            return self._end(pod, 2, "Error", "Traceback (most recent call last):\n"
                             "RuntimeError: boom\n", started)
        if role == "coordinator":
            code, output = self._coordinator(pod, container)
        else:
            code, output = self._sandbox(pod, container)
        self._end(pod, code, "Completed" if code == 0 else "Error", output, started)
        return None

    def _end(self, pod: dict[str, Any], code: int, reason: str, output: str, started: str,
             evicted: bool = False) -> None:
        meta = pod["metadata"]
        if self.fake.get("Pod", meta["namespace"], meta["name"]) is None:
            return  # deleted meanwhile
        self.fake.logs[(meta["namespace"], meta["name"])] = output
        status: dict[str, Any] = {
            "phase": "Succeeded" if code == 0 and not evicted else "Failed",
            "containerStatuses": [{
                "name": pod["spec"]["containers"][0]["name"],
                "image": pod["spec"]["containers"][0]["image"], "ready": False,
                "restartCount": 0, "state": {"terminated": {
                    "exitCode": code, "reason": reason, "startedAt": started,
                    "finishedAt": now()}}}],
        }
        if evicted:
            status["reason"] = "Evicted"
            status["message"] = "The node was low on resource: spot node preempted."
            status["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                     "reason": "TerminationByKubelet",
                                     "message": "spot VM evicted"}]
        self._set(pod, status)
        job = meta["labels"].get("job-name")
        if job:
            kind = "Complete" if status["phase"] == "Succeeded" else "Failed"
            self.fake.update("Job", meta["namespace"], job, {"status": {
                "active": 0, "succeeded" if kind == "Complete" else "failed": 1,
                "completionTime": now(),
                "conditions": [{"type": kind, "status": "True",
                                "reason": "" if kind == "Complete"
                                else "BackoffLimitExceeded"}]}})

    def _coordinator(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[int, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig),
               **{item["name"]: item["value"] for item in container.get("env") or ()}}
        command = [str(VENV_BIN / container["command"][0]), *container["command"][1:]]
        meta = pod["metadata"]
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:
            # As the kubelet does: a deleted pod's container gets SIGTERM.
            threading.Thread(target=self._terminate_when_deleted,
                             args=(proc, meta["namespace"], meta["name"]), daemon=True).start()
            output, _ = proc.communicate(timeout=600)
        return proc.returncode, output

    def _terminate_when_deleted(self, proc: subprocess.Popen, namespace: str,
                                name: str) -> None:
        while proc.poll() is None:
            if self.fake.get("Pod", namespace, name) is None:
                proc.terminate()
                return
            time.sleep(0.05)

    def _sandbox(self, pod: dict[str, Any], container: dict[str, Any]) -> tuple[int, str]:
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or ()}
        binds: list[str] = []
        scratch = Path(tempfile.mkdtemp(prefix="pod-", dir=self.root))
        for mount in sorted(container.get("volumeMounts") or (),
                            key=lambda m: m["mountPath"].count("/")):
            source = self._volume_path(namespace, volumes[mount["name"]], scratch)
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            flag = "--ro-bind" if mount.get("readOnly") else "--bind"
            binds += [flag, str(source), mount["mountPath"]]
        command = ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                   "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                   "--symlink", "usr/sbin", "/sbin", "--tmpfs", "/etc", "--tmpfs", "/tmp",
                   *[arg for name in ETC for arg in ("--ro-bind-try", name, name)],
                   "--ro-bind", str(REPO), str(REPO),
                   "--ro-bind", sys.base_prefix, sys.base_prefix,
                   "--proc", "/proc", "--dev", "/dev",
                   # /tmp's tmpfs comes first: the checkout or the test's folders may be in /tmp
                   "--bind", str(self.root.parent), str(self.root.parent),
                   "--die-with-parent", *binds,
                   "--setenv", "PATH", f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"]
        for item in container.get("env") or ():
            command += ["--setenv", item["name"], item["value"]]
        if container.get("workingDir"):
            command += ["--chdir", container["workingDir"]]
        command += container["command"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})
        return done.returncode, done.stdout + done.stderr

    def _volume_path(self, namespace: str, volume: dict[str, Any], scratch: Path) -> Path:
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            path = self.root / "volumes" / namespace / claim
            path.mkdir(parents=True, exist_ok=True)
            return path
        if "configMap" in volume:
            source = self.fake.get("ConfigMap", namespace, volume["configMap"]["name"])
            folder = scratch / volume["name"]
            folder.mkdir()
            data = (source or {}).get("data") or {}
            for item in volume["configMap"].get("items") or [{"key": k, "path": k}
                                                              for k in data]:
                (folder / item["path"]).write_text(data.get(item["key"], ""))
            return folder
        raise ValueError(f"volume {json.dumps(volume)} is not simulated")
