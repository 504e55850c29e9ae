"""``tes``: submit, list, inspect, cancel, wait for and watch TES tasks.

Exit codes a script can use: 0 done; 1 a task ended in a state other than COMPLETE
(``wait``, ``run --wait``, ``submit --wait``, ``logs --follow``); 2 a usage mistake (a
flag, the task file, the config file); 3 the server refused the request (the message says
why: a bad task, an unknown id, a missing token); 4 the server could not be reached; 5
``--timeout`` passed first.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .build import read_task, task_from_flags
from .completion import SHELLS
from .completion import script as completion_script
from .config import resolve
from .follow import FINISHED, follow, wait_for
from .http import ClientError, TesClient, UsageError
from .logs import OutputFollower
from .output import FORMATS, dump, executor_logs, task_table

EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_TIMEOUT = range(6)
VIEWS = ("MINIMAL", "BASIC", "FULL")


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is _completion:
        print(completion_script(parser, args.shell), end="")
        return EXIT_OK
    try:
        connection = resolve(args.url, args.token, args.config)
        client = TesClient(connection.url, connection.token)
        return args.command(client, args)
    except UsageError as exc:
        print(f"tes: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClientError as exc:
        print(f"tes: {exc}", file=sys.stderr)
        return EXIT_REFUSED if exc.status is not None else EXIT_UNREACHABLE
    except TimeoutError:
        print("tes: timed out before every task finished", file=sys.stderr)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tes", description="A client of GA4GH TES servers.",
        epilog="exit codes: 0 ok, 1 a task did not end COMPLETE, 2 usage, 3 refused by "
               "the server, 4 server unreachable, 5 timeout",
    )
    _connection_flags(parser, None)
    # The same flags after the command too (``tes list --url ...``).
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, argparse.SUPPRESS)
    commands = _Commands(parser.add_subparsers(title="commands", required=True,
                                               metavar="COMMAND"), common)

    run = commands.add_parser("run", help="build a task from flags and submit it")
    run.add_argument("--image", required=True)
    run.add_argument("--name")
    run.add_argument("--input", action="append", default=[], metavar="SRC:PATH")
    run.add_argument("--output", action="append", default=[], metavar="PATH:DST")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    run.add_argument("--tag", action="append", default=[], metavar="K=V")
    run.add_argument("--cpu", type=int)
    run.add_argument("--ram", type=float, help="GB")
    run.add_argument("--disk", type=float, help="GB")
    run.add_argument("--workdir")
    _wait_flags(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    run.set_defaults(command=_run)

    submit = commands.add_parser(
        "submit", help="submit a task from a JSON or YAML file (- reads stdin)"
    )
    submit.add_argument("file")
    _wait_flags(submit)
    submit.set_defaults(command=_submit)

    listing = commands.add_parser("list", help="list tasks, newest first")
    listing.add_argument("--state")
    listing.add_argument("--name-prefix")
    listing.add_argument("--tag", action="append", default=[], metavar="K[=V]")
    listing.add_argument("--view", choices=VIEWS, default="BASIC")
    listing.add_argument("--page-size", type=int)
    listing.add_argument("--page-token")
    listing.add_argument("--all", action="store_true", help="follow next_page_token to the end")
    listing.add_argument("-o", "--format", choices=FORMATS, default="table")
    listing.set_defaults(command=_list)

    get = commands.add_parser("get", help="show one task")
    get.add_argument("id")
    get.add_argument("--view", choices=VIEWS, default="BASIC")
    get.add_argument("-o", "--format", choices=FORMATS[1:], default="json")
    get.set_defaults(command=_get)

    cancel = commands.add_parser("cancel", help="cancel tasks")
    cancel.add_argument("ids", nargs="+", metavar="ID")
    cancel.set_defaults(command=_cancel)

    wait = commands.add_parser("wait", help="wait until tasks finish (exit 1 unless all COMPLETE)")
    wait.add_argument("ids", nargs="+", metavar="ID")
    wait.add_argument("--timeout", type=float, help="seconds")
    wait.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    wait.set_defaults(command=_wait)

    watch = commands.add_parser("watch", help="print task events as they happen (Ctrl-C stops)")
    watch.add_argument("--state")
    watch.add_argument("--name-prefix")
    watch.add_argument("--tag", action="append", default=[], metavar="K[=V]")
    watch.set_defaults(command=_watch)

    logs = commands.add_parser("logs", help="executor stdout/stderr tails and system logs")
    logs.add_argument("id")
    logs.add_argument("--stream", choices=("stdout", "stderr", "both"), default="both")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="print the executors' output as they write it (stdout to stdout, "
                           "stderr and system log lines to stderr) until the task ends; "
                           "exit 1 unless it ended COMPLETE")
    logs.set_defaults(command=_logs)

    info = commands.add_parser("info", help="the server's service-info")
    info.add_argument("-o", "--format", choices=FORMATS[1:], default="json")
    info.set_defaults(command=_info)

    completion = commands.add_parser(
        "completion", help="print the shell completion script: eval \"$(tes completion bash)\"")
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(command=_completion)
    return parser


def _connection_flags(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--url", default=default,
                        help="server URL (env TES_URL; default http://127.0.0.1:8000)")
    parser.add_argument("--token", default=default, help="bearer token (env TES_TOKEN)")
    parser.add_argument("--config", default=default,
                        help="config file (env TES_CONFIG; default ~/.config/tes/config.toml)")


class _Commands:
    """``add_parser`` giving every command the connection flags."""

    def __init__(self, actions: Any, common: argparse.ArgumentParser) -> None:
        self.actions = actions
        self.common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self.actions.add_parser(name, parents=[self.common], **kwargs)


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true",
                        help="wait until the task finishes (exit 1 unless COMPLETE)")
    parser.add_argument("--timeout", type=float, help="seconds to --wait at most")


def _completion(client: TesClient, args: argparse.Namespace) -> int:
    """Printed by :func:`main` itself: completion needs no server."""
    raise AssertionError("handled before connecting")


def _run(client: TesClient, args: argparse.Namespace) -> int:
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    task = task_from_flags(
        image=args.image, command=command, name=args.name, inputs=args.input,
        outputs=args.output, env=args.env, tags=args.tag, cpu=args.cpu, ram=args.ram,
        disk=args.disk, workdir=args.workdir,
    )
    return _created(client, client.create(task), args)


def _submit(client: TesClient, args: argparse.Namespace) -> int:
    return _created(client, client.create(read_task(args.file)), args)


def _created(client: TesClient, task_id: str, args: argparse.Namespace) -> int:
    print(task_id)
    if not args.wait:
        return EXIT_OK
    return _finished(wait_for(client, [task_id], _progress, args.timeout))


def _list(client: TesClient, args: argparse.Namespace) -> int:
    params = _filters(args) + [("view", args.view)]
    if args.page_size:
        params.append(("page_size", str(args.page_size)))
    token = args.page_token
    tasks: list[dict[str, Any]] = []
    while True:
        page = client.list(params + ([("page_token", token)] if token else []))
        tasks += page.get("tasks", [])
        token = page.get("next_page_token")
        if not (args.all and token):
            break
    if args.format == "table":
        task_table(tasks)
        if token:
            print(f"(more: --page-token {token})", file=sys.stderr)
    else:
        dump({"tasks": tasks, **({"next_page_token": token} if token else {})}, args.format)
    return EXIT_OK


def _get(client: TesClient, args: argparse.Namespace) -> int:
    dump(client.get(args.id, args.view), args.format)
    return EXIT_OK


def _cancel(client: TesClient, args: argparse.Namespace) -> int:
    for task_id in args.ids:
        client.cancel(task_id)
        print(f"{task_id} cancel requested")
    return EXIT_OK


def _wait(client: TesClient, args: argparse.Namespace) -> int:
    progress = (lambda _task_id, _state: None) if args.quiet else _progress
    return _finished(wait_for(client, args.ids, progress, args.timeout))


def _watch(client: TesClient, args: argparse.Namespace) -> int:
    response = client.open_events(_filters(args))
    print("watching task events (Ctrl-C stops)", file=sys.stderr, flush=True)
    for kind, data in follow(client, _filters(args), response):
        if kind in ("state", "log"):
            print(_describe(kind, data), flush=True)
    return EXIT_OK


def _logs(client: TesClient, args: argparse.Namespace) -> int:
    streams = ("stdout", "stderr") if args.stream == "both" else (args.stream,)
    task = client.get(args.id, "FULL")
    if not args.follow:
        for line in _system_logs(task):
            print(line, flush=True)
        executor_logs(task, streams)
        return EXIT_OK
    for line in _system_logs(task):
        print(line, file=sys.stderr, flush=True)
    follower = OutputFollower(client, args.id, streams)
    if task.get("state") in FINISHED:
        follower.finish(task)
        return _finished({args.id: task["state"]})
    return _finished({args.id: follower.run(task)})


def _info(client: TesClient, args: argparse.Namespace) -> int:
    dump(client.service_info(), args.format)
    return EXIT_OK


def _filters(args: argparse.Namespace) -> list[tuple[str, str]]:
    params = []
    if args.state:
        params.append(("state", args.state))
    if args.name_prefix:
        params.append(("name_prefix", args.name_prefix))
    for tag in args.tag:
        key, _, value = tag.partition("=")
        params += [("tag_key", key), ("tag_value", value)]
    return params


def _system_logs(task: dict[str, Any]) -> list[str]:
    return [f"[system] {line}" for attempt in task.get("logs") or []
            for line in attempt.get("system_logs") or []]


def _describe(kind: str, data: dict[str, Any]) -> str:
    task = data.get("task_id", "")
    if kind == "state":
        name = f" ({data['name']})" if data.get("name") else ""
        return f"{data.get('time', '')} {task}{name} {data.get('state')}"
    if "executor" in data:
        end = data["executor"]
        return (f"{data.get('time', '')} {task} executor {end.get('index')} ended, "
                f"exit code {end.get('exit_code')}")
    return f"{data.get('time', '')} {task} [system] {data.get('system_log', '')}"


def _progress(task_id: str, state: str) -> None:
    print(f"{task_id} {state}", file=sys.stderr, flush=True)


def _finished(states: dict[str, str]) -> int:
    return EXIT_OK if all(state == "COMPLETE" for state in states.values()) else EXIT_TASK_FAILED


if __name__ == "__main__":
    sys.exit(main())
