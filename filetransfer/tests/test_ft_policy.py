"""The storage access policy: local folders, network addresses, redirects, plugins."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tes_filetransfer import (
    AccessDenied,
    AccessPolicy,
    TransferConfig,
    TransferError,
    register_storage,
    stage_inputs,
    upload_outputs,
)
from tes_filetransfer.policy import HostRule, address_kind, default_local_dirs
from tes_filetransfer.storage import unregister_storage

LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "0x7f000001",
    "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]",
    "[2002:7f00:1::1]", "[64:ff9b::7f00:1]", "localhost", "LOCALHOST.",
]
OTHER_FORBIDDEN = [
    "169.254.169.254", "[fe80::1]", "10.0.0.1", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "0.0.0.0", "[::]", "[fd00::1]", "224.0.0.1", "240.0.0.1",
    "[::ffff:169.254.169.254]",
]


class Listener:
    """A loopback TCP listener that counts connections (it must see none)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    made = Listener()
    yield made
    made.sock.close()


def config(policy: AccessPolicy) -> TransferConfig:
    return TransferConfig(parallel=2, attempts=1, backoff=0.01, policy=policy)


def refused(policy: AccessPolicy, url: str, root: Path) -> str:
    with pytest.raises(TransferError) as info:
        stage_inputs([{"url": url, "path": "/in/x"}], root, config=config(policy))
    return str(info.value)


# -- network -------------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_FORBIDDEN)
def test_every_spelling_of_a_non_public_host_is_refused(
    host: str, tmp_path: Path, listener: Listener
) -> None:
    port = f":{listener.port}" if "localhost" in host.lower() or "127" in host else ""
    for scheme in ("http", "https", "ftp"):
        message = refused(AccessPolicy.build([], []), f"{scheme}://{host}{port}/x", tmp_path)
        assert "TES_FT_ALLOWED_HOSTS" in message and "refused" in message
    assert listener.hits == 0


def test_closed_and_open_ports_get_the_same_refusal(tmp_path: Path, listener: Listener) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    policy = AccessPolicy.build([], [])
    open_msg = refused(policy, f"http://127.0.0.1:{listener.port}/x", tmp_path)
    closed_msg = refused(policy, f"http://127.0.0.1:{closed_port}/x", tmp_path)
    assert open_msg.replace(str(listener.port), "P") == closed_msg.replace(str(closed_port), "P")
    assert listener.hits == 0


def test_address_kinds() -> None:
    import ipaddress

    assert address_kind(ipaddress.ip_address("93.184.216.34")) is None
    assert address_kind(ipaddress.ip_address("2606:4700::1")) is None
    assert address_kind(ipaddress.ip_address("::ffff:10.0.0.1")) == "private"
    assert address_kind(ipaddress.ip_address("2002:a9fe:a9fe::1")) == "link-local"


def test_allow_list_entries() -> None:
    rule = HostRule.parse("127.0.0.1:10000", "X")
    assert rule.port == 10000 and rule.network is not None
    assert HostRule.parse("[::1]:80", "X").port == 80
    assert HostRule.parse("10.0.0.0/8", "X").network is not None
    assert HostRule.parse("*.Corp.Example", "X").allows_name("a.corp.example", 443)
    with pytest.raises(TransferError, match="X"):
        HostRule.parse("not a host!", "X")
    policy = AccessPolicy.build([], ["127.0.0.1:10000", "localhost"])
    assert policy.network.resolve("127.0.0.1", 10000) == ["127.0.0.1"]
    assert policy.network.resolve("2130706433", 10000) == ["127.0.0.1"]
    assert "127.0.0.1" in policy.network.resolve("localhost", 1)
    with pytest.raises(AccessDenied):
        policy.network.resolve("127.0.0.1", 10001)


def test_allow_listed_host_is_reached(http_server, tmp_path: Path) -> None:  # noqa: ANN001
    (http_server.root / "a.txt").write_text("ok")
    policy = AccessPolicy.build([], [f"127.0.0.1:{http_server.port}"])
    stage_inputs([{"url": http_server.url("a.txt"), "path": "/a.txt"}], tmp_path / "t",
                 config=config(policy))
    assert (tmp_path / "t/a.txt").read_text() == "ok"


class Redirector:
    """An HTTP server on 127.0.0.2 answering every request with a redirect to ``target``."""

    def __init__(self, target: str) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _redirect(self) -> None:
                seen.append(self.command)
                self.send_response(302 if self.command in ("GET", "HEAD") else 307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = _redirect

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("spelling", ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_redirect_from_an_allowed_host_to_loopback_is_refused(
    spelling: str, tmp_path: Path, listener: Listener
) -> None:
    redirector = Redirector(f"http://{spelling}:{listener.port}/secret")
    try:
        policy = AccessPolicy.build([], ["127.0.0.2"])
        url = f"http://127.0.0.2:{redirector.port}/x"
        message = refused(policy, url, tmp_path / "in")
        assert "refused" in message and "TES_FT_ALLOWED_HOSTS" in message
        (tmp_path / "out").mkdir()
        (tmp_path / "out/o.txt").write_text("data")
        with pytest.raises(TransferError, match="refused"):
            upload_outputs([{"path": "/o.txt", "url": url}], tmp_path / "out",
                           config=config(policy))
    finally:
        redirector.close()
    assert listener.hits == 0


def test_a_cached_input_redirected_to_loopback_is_refused_at_its_version_check(
    tmp_path: Path, listener: Listener
) -> None:
    """With the node cache, the first request is the HEAD that reads the version: its
    redirect to loopback is refused there, once, and not tried again as a download."""
    redirector = Redirector(f"http://127.0.0.1:{listener.port}/secret")
    try:
        policy = AccessPolicy.build([], ["127.0.0.2"])
        with pytest.raises(TransferError, match="'127.0.0.1' is refused"):
            stage_inputs(
                [{"url": f"http://127.0.0.2:{redirector.port}/x", "path": "/in/x"}],
                tmp_path / "in",
                config=replace(config(policy), attempts=3, cache_dir=tmp_path / "cache"),
            )
        assert redirector.requests == ["HEAD"]
        assert listener.hits == 0
        assert not (tmp_path / "in/in/x").exists()
    finally:
        redirector.close()


def test_plugin_storage_gets_the_url_check(tmp_path: Path) -> None:
    calls: list[str] = []

    class Fake:
        def download(self, url: str, dest: Path) -> int:
            calls.append(url)
            dest.write_text("x")
            return 1

        def download_dir(self, url: str, dest: Path) -> int:
            calls.append(url)
            return 0

        def upload(self, src: Path, url: str) -> int:
            calls.append(url)
            return 1

    register_storage("fake", Fake())
    try:
        policy = AccessPolicy.build([], [])
        assert "refused" in refused(policy, "fake://169.254.169.254/latest", tmp_path)
        assert calls == []
        stage_inputs([{"url": "fake://bucket-not-a-host/x", "path": "/x"}], tmp_path,
                     config=config(policy))
        assert calls == ["fake://bucket-not-a-host/x"]
    finally:
        unregister_storage("fake")


def test_s3_endpoint_and_azurite_urls_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = AccessPolicy.build([], [])
    monkeypatch.setenv("TES_FT_S3_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert "refused" in refused(policy, "s3://bucket/key", tmp_path)
    sas = "sv=2021-08-06&sr=b&sp=r&sig=abc"
    message = refused(policy, f"http://127.0.0.1:10000/devstoreaccount1/c/b?{sas}", tmp_path)
    assert "refused" in message and "sig=" not in message


# -- local folders ---------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, AccessPolicy]:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return allowed, outside, AccessPolicy.build([allowed], [])


def test_input_outside_the_allowed_folders_is_refused(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, outside, policy = folders
    for url in (str(outside / "secret.txt"), f"file://{outside}/secret.txt",
                f"{allowed}/../outside/secret.txt", "/etc/passwd"):
        message = refused(policy, url, tmp_path / "task")
        assert "TES_FT_ALLOWED_LOCAL_DIRS" in message
    assert not (tmp_path / "task/in/x").exists()


def test_symlink_out_of_an_allowed_folder_is_refused(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, outside, policy = folders
    os.symlink(outside / "secret.txt", allowed / "link.txt")
    os.symlink(outside, allowed / "linkdir")
    assert "refused" in refused(policy, str(allowed / "link.txt"), tmp_path / "t")
    assert "refused" in refused(policy, str(allowed / "linkdir/secret.txt"), tmp_path / "t")
    with pytest.raises(TransferError, match="refused"):
        stage_inputs([{"url": str(allowed / "linkdir"), "path": "/d", "type": "DIRECTORY"}],
                     tmp_path / "t", config=config(policy))


def test_denied_folder_inside_an_allowed_one_wins(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, _, policy = folders
    (allowed / "data").mkdir()
    (allowed / "data/db.sqlite3").write_text("db")
    (allowed / "ok.txt").write_text("ok")
    policy = policy.deny(allowed / "data")
    assert "server's own folders" in refused(policy, str(allowed / "data/db.sqlite3"),
                                             tmp_path / "t")
    stage_inputs([{"url": str(allowed), "path": "/d", "type": "DIRECTORY"}], tmp_path / "t",
                 config=config(policy))
    assert (tmp_path / "t/d/ok.txt").read_text() == "ok"
    assert not (tmp_path / "t/d/data/db.sqlite3").exists()


def test_directory_input_never_copies_into_itself(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    (store / "sub/a.txt").write_text("a")
    root = store / "tasks/t1"  # the task's folder is inside the folder it copies
    root.mkdir(parents=True)
    (root / "earlier.txt").write_text("from an earlier input")
    policy = AccessPolicy.build([tmp_path], [])
    stage_inputs([{"url": str(store), "path": "/in", "type": "DIRECTORY"}], root,
                 config=config(policy))
    assert (root / "in/sub/a.txt").read_text() == "a"
    assert not (root / "in/tasks/t1").exists()
    assert not (root / "in/tasks/t1/in").exists()


def test_output_outside_the_allowed_folders_is_refused(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, outside, policy = folders
    root = tmp_path / "task"
    (root / "o").mkdir(parents=True)
    (root / "o/r.txt").write_text("result")
    os.symlink(outside, allowed / "escape")
    for url in (f"file://{outside}/new.txt", str(allowed / "escape/new.txt"),
                str(allowed / "../outside/new.txt")):
        with pytest.raises(TransferError, match="TES_FT_ALLOWED_LOCAL_DIRS"):
            upload_outputs([{"path": "/o/r.txt", "url": url}], root, config=config(policy))
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    upload_outputs([{"path": "/o/r.txt", "url": str(allowed / "x/r.txt")}], root,
                   config=config(policy))
    assert (allowed / "x/r.txt").read_text() == "result"


def test_output_replaces_a_symlink_instead_of_following_it(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, outside, policy = folders
    root = tmp_path / "task"
    root.mkdir()
    (root / "r.txt").write_text("result")
    os.symlink(outside / "secret.txt", allowed / "out.txt")
    with pytest.raises(TransferError, match="refused"):
        upload_outputs([{"path": "/r.txt", "url": str(allowed / "out.txt")}], root,
                       config=config(policy))
    assert (outside / "secret.txt").read_text() == "secret"
    (allowed / "keep.txt").write_text("keep")
    os.symlink(allowed / "keep.txt", allowed / "r.txt")
    upload_outputs([{"path": "/r.txt", "url": str(allowed / "r.txt")}], root,
                   config=config(policy))
    assert (allowed / "keep.txt").read_text() == "keep"
    assert not (allowed / "r.txt").is_symlink()
    assert (allowed / "r.txt").read_text() == "result"


def test_fifo_input_is_refused_without_blocking(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, _, policy = folders
    os.mkfifo(allowed / "pipe")
    assert "not a regular file" in refused(policy, str(allowed / "pipe"), tmp_path / "t")


def test_policies_of_parallel_transfers_do_not_mix(folders, tmp_path: Path) -> None:  # noqa: ANN001
    allowed, outside, policy = folders
    wide = AccessPolicy.build([tmp_path], [])
    errors: list[str] = []

    def narrow_run() -> None:
        try:
            stage_inputs([{"url": str(outside / "secret.txt"), "path": "/s"}] * 20,
                         tmp_path / "narrow", config=config(policy))
        except TransferError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=narrow_run)
    thread.start()
    stage_inputs([{"url": str(outside / "secret.txt"), "path": f"/s{i}"} for i in range(20)],
                 tmp_path / "wide", config=replace(config(wide), parallel=4))
    thread.join()
    assert errors and not (tmp_path / "narrow/s").exists()


def test_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TES_FT_ALLOWED_LOCAL_DIRS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert AccessPolicy.from_env().local_dirs == tuple(
        os.path.realpath(d) for d in default_local_dirs()
    )
    assert str(tmp_path.resolve()) in AccessPolicy.from_env().local_dirs
    monkeypatch.chdir("/")
    assert AccessPolicy.from_env().local_dirs == (os.path.realpath("/tmp"),)
    monkeypatch.setenv("TES_FT_ALLOWED_LOCAL_DIRS", "")
    assert AccessPolicy.from_env().local_dirs == ()
    monkeypatch.setenv("TES_FT_ALLOWED_HOSTS", "10.0.0.0/8, example.org:8443")
    assert len(TransferConfig.from_env().policy.network.rules) == 2


def test_cli_reads_the_policy_from_its_environment(
    folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from tes_filetransfer.cli import main

    allowed, outside, _ = folders
    (allowed / "ok.txt").write_text("ok")
    monkeypatch.setenv("TES_FT_ALLOWED_LOCAL_DIRS", str(allowed))
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"inputs": [
        {"url": str(allowed / "ok.txt"), "path": "/ok.txt"},
        {"url": str(outside / "secret.txt"), "path": "/secret.txt"},
    ]}))
    assert main(["download", "--task", str(task), "--root", str(tmp_path / "r")]) == 1
    assert "TES_FT_ALLOWED_LOCAL_DIRS" in capsys.readouterr().err
    assert not (tmp_path / "r/secret.txt").exists()


def test_pseudo_file_systems_are_denied_even_under_an_allowed_root(tmp_path: Path) -> None:
    policy = AccessPolicy.build(["/"], [])
    for url in ("/proc/self/environ", "file:///proc/1/mem", "/sys/kernel/notes", "/dev/zero"):
        assert "/proc, /sys and /dev" in refused(policy, url, tmp_path)


def test_a_policy_travels_to_another_process_unchanged(tmp_path: Path) -> None:
    allowed, denied = tmp_path / "in", tmp_path / "in/private"
    denied.mkdir(parents=True)
    policy = AccessPolicy.build(
        [allowed],
        ["minio.internal", "*.corp.example", "10.0.0.0/8", "127.0.0.1:10000", "[::1]:8080",
         "fd00::/8"],
        denied=[denied], dirs_setting="TES_ALLOWED_LOCAL_DIRS", hosts_setting="TES_X",
    )
    import json

    again = AccessPolicy.from_portable(json.loads(json.dumps(policy.portable())))
    assert again == policy


def test_a_host_is_looked_up_once_for_many_urls_and_checked_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tes_filetransfer.policy as policy_module

    calls: list[str] = []
    real = socket.getaddrinfo

    def counting(host: str, *args: object, **kwargs: object) -> object:
        calls.append(host)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(policy_module.socket, "getaddrinfo", counting)
    monkeypatch.setattr(policy_module, "_resolved", {})
    refusing = AccessPolicy.build([], [])
    for i in range(50):
        with pytest.raises(AccessDenied):
            refusing.check_url(f"http://storage.example/f{i}")
    assert calls == ["storage.example"]
