"""The production shape as real processes: gunicorn serving ``create_app()`` with
``tes_core.gunicorn_conf``, ``tes-server worker`` processes, PostgreSQL and Redis.

Shared by the production, fault and reliability tests and by the benchmarks.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests.private_services import free_port
from tests.servers import server_env, stop_process


class Deployment:
    """A gunicorn API process plus worker processes sharing PostgreSQL and Redis."""

    def __init__(
        self,
        folder: Path,
        database_url: str,
        broker_url: str,
        *,
        api_workers: int = 2,
        api_threads: int = 4,
        **settings: str,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = server_env(
            folder / "data",
            database_url,
            TES_BROKER_URL=broker_url,
            TES_BROKER_NAMESPACE=settings.pop(
                "TES_BROKER_NAMESPACE", f"tes-test-{uuid.uuid4().hex[:8]}"
            ),
            **settings,
        )
        self.api_workers = api_workers
        self.api_threads = api_threads
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/ga4gh/tes/v1"
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs = 0

    def _log(self, name: str) -> Path:
        self._logs += 1
        return self.folder / f"{name}-{self._logs}.log"

    def migrate(self) -> None:
        """``tes-server db upgrade``."""
        done = subprocess.run(
            [sys.executable, "-m", "tes_core.cli", "db", "upgrade"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{done.stderr}")

    def start_api(self, timeout: float = 60.0) -> None:
        """gunicorn with the production configuration; returns once it answers."""
        log = self._log("api")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:tes_core.gunicorn_conf",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.api_workers),
             "--threads", str(self.api_threads), "tes_core.app:create_app()"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/service-info", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not start:\n" + log.read_text())

    def stop_api(self) -> None:
        """SIGTERM: gunicorn finishes requests in flight, then exits."""
        stop_process(self.api)
        self.api = None

    def start_worker(self) -> subprocess.Popen:
        """A ``tes-server worker``; returns once it says it runs."""
        log = self._log("worker")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tes_core.cli", "worker"],
            env=self.env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not re.search(r"TES worker \S+ running", line):
            raise RuntimeError(f"worker did not start: {line}\n{log.read_text()}")
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """kill -9, as a crash would."""
        proc.kill()
        proc.wait(10)
        self.workers.remove(proc)

    def restart_worker(self, proc: subprocess.Popen, grace: float) -> tuple[float, int | None]:
        """A rolling restart's step: SIGTERM ``proc``, wait up to ``grace`` seconds for it
        to exit, then start its successor. Returns the seconds it took to exit and its
        exit status (``None``: still running after ``grace``, then killed)."""
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            status: int | None = proc.wait(grace)
        except subprocess.TimeoutExpired:
            status = None
            proc.kill()
            proc.wait(10)
        took = time.monotonic() - started
        self.workers.remove(proc)
        self.start_worker()
        return took, status

    def logs(self) -> str:
        """Every process's log, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 20 s)."""
        for proc in [*self.workers, self.api]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.api]:
            stop_process(proc)
        self.workers = []
        self.api = None
