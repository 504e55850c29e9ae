"""The ``tes-filetransfer`` command: download inputs / upload outputs of a TES task document.

``download`` (alias ``stage-inputs``) and ``upload`` (alias ``upload-outputs``). On a terminal
a live progress line is shown; otherwise one line per input goes to stdout and, with
``--verbose``, log lines per file to stderr. Settings come from ``TES_FT_*`` variables
(:class:`tes_filetransfer.config.TransferConfig`), the access policy included
(``TES_FT_ALLOWED_LOCAL_DIRS``, ``TES_FT_ALLOWED_HOSTS``); ``--root`` is always denied.
A URL whose storage needs an extra that is not installed (``s3://`` without
``tes-filetransfer[s3]``) stops the command before anything moves, naming the pip command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import TransferConfig
from .errors import TransferError
from .outputs import upload_outputs
from .staging import stage_inputs
from .storage import unavailable_storages
from .tty import LiveProgress

PROG = "tes-filetransfer"
INPUT_COMMANDS = ("download", "stage-inputs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stage the inputs or upload the outputs of a GA4GH TES task.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--task", required=True, type=Path, help="TES task document (JSON)")
    common.add_argument(
        "--root", required=True, type=Path,
        help="host folder that stands for the container's '/'",
    )
    common.add_argument("--verbose", "-v", action="store_true", help="log each transfer")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "download", aliases=["stage-inputs"], parents=[common],
        help="fetch the task's inputs into ROOT",
    )
    up = sub.add_parser(
        "upload", aliases=["upload-outputs"], parents=[common],
        help="upload the task's outputs found under ROOT",
    )
    up.add_argument(
        "--log", type=Path,
        help="write the OutputFileLog list here as JSON (default: standard output)",
    )
    return parser


def _load_task(path: Path) -> dict[str, Any]:
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TransferError(f"cannot read task file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TransferError(f"task file {path} is not valid JSON: {exc}") from None
    if not isinstance(task, dict):
        raise TransferError(f"task file {path} must hold a JSON object (a TES task)")
    return task


def _items(task: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = task.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TransferError(f"the task's {key!r} must be a list of objects")
    return items


def _write_log(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise TransferError(
            f"outputs were uploaded but writing the log {path} failed: {exc.strerror or exc}"
        ) from None


def _check_installed(task: dict[str, Any], key: str) -> None:
    """Refuse the task before anything moves if one of its URLs needs a storage extra that
    is not installed, naming the field and the pip command."""
    missing = unavailable_storages(task, (key,))
    if missing:
        raise TransferError("; ".join(f"{field}: {exc}" for field, exc in missing.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 transfer failed, 2 bad usage)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("azure", "urllib3", "aiobotocore", "botocore", "s3fs", "gcsfs", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # their lines may name tokens
    live = (
        LiveProgress(f"{PROG} {args.command}", sys.stderr)
        if sys.stderr.isatty() and not args.verbose
        else contextlib.nullcontext()
    )
    try:
        config = TransferConfig.from_env()
        task = _load_task(args.task)
        _check_installed(task, "inputs" if args.command in INPUT_COMMANDS else "outputs")
        if args.command in INPUT_COMMANDS:
            with live:
                lines = stage_inputs(_items(task, "inputs"), args.root, config=config)
            for line in lines:
                print(line)
        else:
            with live:
                logs = upload_outputs(_items(task, "outputs"), args.root, config=config)
            text = json.dumps(logs, indent=2)
            if args.log is not None:
                _write_log(args.log, text)
            else:
                print(text)
    except TransferError as exc:
        message = str(exc).replace("\n", " ")
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
