"""tes-filetransfer against the azure-storage-blob SDK's own parallel transfer, on Azurite.

    python -m bench.bench_transfer [--skip-large] [--large-mb 1024] [--small-count 1000]

Four throughput ratios (ours / SDK, same data, same concurrency, ABBA order, medians): 1 x
1 GB download and upload (SDK: ``download_blob(max_concurrency=N).readinto`` and
``upload_blob(max_concurrency=N)``), 1000 x 100 KB download and upload (SDK: one
``BlobClient`` call per blob on a pool of N threads). Every download of either side goes
to a fresh, empty folder (emptied untimed), as a new task's would. Then the content cache:
a second task with the same inputs must download 0 bytes. Then resident memory: a child
process uploads and downloads the 1 GB file and a 2 GB file with the CLI and prints its
peak RSS (target < 200 MB). Needs Azurite (bash scripts/test-services.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import Outcome, at_least, at_most, bench_arguments, measured, report

ACCOUNT_URL = os.environ.get(
    "TES_TEST_AZURITE_ACCOUNT_URL", "http://127.0.0.1:10000/devstoreaccount1"
)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION_STRING = os.environ.get(
    "TES_TEST_AZURITE_CONNECTION_STRING",
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
    f"BlobEndpoint={ACCOUNT_URL};",
)


def arguments() -> argparse.ArgumentParser:
    """The benchmark's options."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--skip-large", action="store_true",
                        help="skip the 1 GB ratios and the 2 GB memory check")
    parser.add_argument("--large-mb", type=int, default=1024)
    parser.add_argument("--rss-mb", type=int, default=2048, help="file size of the RSS check")
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--small-kb", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4,
                        help="ABBA rounds of the small-file cases (2 runs per side each)")
    parser.add_argument("--large-rounds", type=int, default=1,
                        help="ABBA rounds of the 1 GB cases")
    return parser


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


def _abba(
    baseline: Callable[[], None],
    ours: Callable[[], None],
    rounds: int,
    prepare: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Median seconds of baseline and ours over ``rounds`` x (B, O, O, B) runs.

    ``prepare`` runs untimed before every run (e.g. to empty the download folders).
    """
    times: dict[str, list[float]] = {"b": [], "o": []}
    for side in "boob" * max(1, rounds):
        if prepare is not None:
            prepare()
        started = time.perf_counter()
        (baseline if side == "b" else ours)()
        times[side].append(time.perf_counter() - started)
        print(f"  {'sdk ' if side == 'b' else 'ours'} {times[side][-1]:7.2f} s", flush=True)
    return statistics.median(times["b"]), statistics.median(times["o"])


def _empty(*folders: Path) -> Callable[[], None]:
    """A ``prepare`` step removing ``folders`` so that the next run writes new files."""

    def empty() -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    return empty


def _outcome(measure: str, nbytes: int, base_s: float, ours_s: float, note: str) -> Outcome:
    base_rate, ours_rate = nbytes / base_s / 1e6, nbytes / ours_s / 1e6
    ratio = ours_rate / base_rate
    target, passed = at_least(ratio, 0.9)
    return Outcome("transfer", measure, base_rate, ours_rate, "MB/s", ratio, target, passed, note)


def run(args: argparse.Namespace) -> list[Outcome]:
    """Run every case against a fresh Azurite container; return the judged figures."""
    from azure.storage.blob import (
        BlobServiceClient,
        ContainerSasPermissions,
        generate_container_sas,
    )
    from tes_filetransfer import TransferConfig, TransferStats, stage_inputs, upload_outputs

    n = args.concurrency
    service = BlobServiceClient.from_connection_string(CONNECTION_STRING)
    try:
        container = service.create_container(f"bench{uuid.uuid4().hex[:12]}")
    except Exception as exc:  # no Azurite
        problem = type(exc).__name__
        raise SystemExit(f"Azurite does not answer at {ACCOUNT_URL}: {problem}") from None
    sas = generate_container_sas(
        "devstoreaccount1", container.container_name, account_key=KEY,
        permission=ContainerSasPermissions.from_string("racwdl"),
        expiry=datetime.now(UTC) + timedelta(hours=4),
    )

    def url(blob: str) -> str:
        return f"{ACCOUNT_URL}/{container.container_name}/{blob}?{sas}"

    config = TransferConfig(parallel=n, chunk_concurrency=n)
    scratch = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    outcomes: list[Outcome] = []
    note = f"Azurite on this machine, concurrency {n}; machine shared, see load lines"
    large_src = scratch / "large.bin"
    try:
        if not args.skip_large:
            size = args.large_mb * 1024 * 1024
            src = large_src
            _write_random(src, size)
            (scratch / "root/out").mkdir(parents=True)
            os.link(src, scratch / "root/out/large.bin")
            blob = container.get_blob_client("large.bin")
            print(f"upload 1 x {args.large_mb} MiB", flush=True)

            def sdk_up() -> None:
                with open(src, "rb") as f:
                    blob.upload_blob(f, overwrite=True, max_concurrency=n)

            def ours_up() -> None:
                upload_outputs([{"path": "/out/large.bin", "url": url("large.bin")}],
                               scratch / "root", config=config)

            b, o = _abba(sdk_up, ours_up, args.large_rounds)
            outcomes.append(_outcome(f"upload 1 x {args.large_mb} MiB", size, b, o, note))
            print(f"download 1 x {args.large_mb} MiB", flush=True)

            def sdk_down() -> None:
                (scratch / "sdk").mkdir()
                with open(scratch / "sdk/large.bin", "wb") as f:
                    blob.download_blob(max_concurrency=n).readinto(f)

            def ours_down() -> None:
                stage_inputs([{"path": "/in/large.bin", "url": url("large.bin")}],
                             scratch / "root", config=config)

            b, o = _abba(sdk_down, ours_down, args.large_rounds,
                         _empty(scratch / "sdk", scratch / "root/in"))
            outcomes.append(_outcome(f"download 1 x {args.large_mb} MiB", size, b, o, note))
            _empty(scratch / "sdk", scratch / "root/in", scratch / "root/out")()

        count, small = args.small_count, args.small_kb * 1024
        folder = scratch / "root/small"
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"f{i:05d}").write_bytes(os.urandom(small))
        names = [f"f{i:05d}" for i in range(count)]
        print(f"upload {count} x {args.small_kb} KiB", flush=True)

        def sdk_up_small() -> None:
            def one(name: str) -> None:
                with open(folder / name, "rb") as f:
                    container.upload_blob(f"sdk/{name}", f, overwrite=True)

            with ThreadPoolExecutor(n) as pool:
                list(pool.map(one, names))

        def ours_up_small() -> None:
            upload_outputs([{"path": "/small", "url": url("small"), "type": "DIRECTORY"}],
                           scratch / "root", config=config)

        b, o = _abba(sdk_up_small, ours_up_small, args.rounds)
        label = f"{count} x {args.small_kb} KiB"
        outcomes.append(_outcome(f"upload {label}", count * small, b, o, note))
        print(f"download {label}", flush=True)
        inputs = [{"path": f"/in/{name}", "url": url(f"small/{name}")} for name in names]

        def sdk_down_small() -> None:
            (scratch / "sdk").mkdir()

            def one(name: str) -> None:
                with open(scratch / "sdk" / name, "wb") as f:
                    container.get_blob_client(f"small/{name}").download_blob().readinto(f)

            with ThreadPoolExecutor(n) as pool:
                list(pool.map(one, names))

        def ours_down_small() -> None:
            stage_inputs(inputs, scratch / "root", config=config)

        b, o = _abba(sdk_down_small, ours_down_small, args.rounds,
                     _empty(scratch / "sdk", scratch / "root/in"))
        outcomes.append(_outcome(f"download {label}", count * small, b, o, note))

        print("content cache: the same inputs for two tasks", flush=True)
        cached = TransferConfig(parallel=n, chunk_concurrency=n, cache_dir=scratch / "cache")
        first, second = TransferStats(), TransferStats()
        stage_inputs(inputs, scratch / "task1", config=cached, stats=first)
        stage_inputs(inputs, scratch / "task2", config=cached, stats=second)
        print(f"  task 1 downloaded {first.downloaded_bytes} bytes; "
              f"task 2 downloaded {second.downloaded_bytes} bytes "
              f"({second.cached_bytes} from the cache)", flush=True)
        target, passed = at_most(second.downloaded_bytes, 0)
        outcomes.append(Outcome("transfer", "second task: bytes downloaded",
                                first.downloaded_bytes, second.downloaded_bytes, "bytes",
                                second.downloaded_bytes / max(first.downloaded_bytes, 1),
                                target, passed, "ratio = task 2 / task 1"))
        _empty(scratch / "sdk", scratch / "root/in", scratch / "task1", scratch / "task2")()

        if not args.skip_large:
            outcomes.append(_rss_check(large_src, scratch, url("large.bin")))
            large_src.unlink()
            rss_src = scratch / "rss.bin"
            _write_random(rss_src, args.rss_mb * 1024 * 1024)
            outcomes.append(_rss_check(rss_src, scratch, url("rss.bin")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        container.delete_container()
    return outcomes


def _rss_check(src: Path, scratch: Path, blob_url: str) -> Outcome:
    """Upload then download ``src`` with the CLI, each in a new child; the larger peak RSS."""
    import json

    size_mb = src.stat().st_size // (1024 * 1024)
    root = scratch / "rssroot"
    shutil.rmtree(root, ignore_errors=True)
    (root / "out").mkdir(parents=True)
    os.link(src, root / "out/rss.bin")
    task = scratch / "rss-task.json"
    task.write_text(json.dumps({
        "outputs": [{"path": "/out/rss.bin", "url": blob_url}],
        "inputs": [{"path": "/in/rss.bin", "url": blob_url}],
    }))
    # Each command runs in its own child that prints the peak RSS of its own memory
    # (VmHWM, in KiB). Not ru_maxrss: Linux carries the parent's peak over into a child
    # started with vfork/exec (subprocess does), and this process holds far more.
    code = (
        "import sys\n"
        "from tes_filetransfer.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "with open('/proc/self/status') as status:\n"
        "    print(next(line.split()[1] for line in status if line.startswith('VmHWM:')),\n"
        "          file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    peaks = []
    for command in ("upload", "download"):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, command, "--task", str(task), "--root", str(root)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        peaks.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
        print(f"  {command} {size_mb} MiB with the CLI: {time.perf_counter() - started:.1f} s, "
              f"peak RSS {peaks[-1]:.0f} MiB", flush=True)
    if (root / "in/rss.bin").stat().st_size != src.stat().st_size:
        raise SystemExit(f"the {size_mb} MiB download has the wrong size")
    shutil.rmtree(root)
    rss = max(peaks)
    target, passed = at_most(rss, 200)
    return Outcome("transfer", f"peak RSS moving 1 x {size_mb} MiB (CLI child)", 200.0, rss,
                   "MiB", rss / 200.0, target, passed, "baseline column = the 200 MiB bound")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; 0 if every figure meets its target."""
    args = arguments().parse_args(argv)
    # Azurite listens on loopback, which the transfer access policy refuses unless listed.
    os.environ.setdefault("TES_FT_ALLOWED_HOSTS", "127.0.0.1,localhost")
    return report(measured(run, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
