"""The command line of a built server output, standard library only.

`python server/index.py` serves the tasks over HTTP with the scheduler;
`index.py task list [--json]` and `index.py task run NAME [--payload JSON]`
work without any server, so a task can be run by hand on the machine the
output was deployed to. Everything comes from the manifest the build wrote
next to `index.py`; no task module is imported until a task runs.

Exit codes: 0 on success (a run prints its result as JSON), 1 when the task
fails or does not exist, 2 for a bad command line or a payload that is not a
JSON object (and then nothing runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import use_runtime
from .errors import TaskError
from .runner import TaskEntry, TaskRuntime
from .task import payload_from_json

if TYPE_CHECKING:
    from .cluster import RedisCluster

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3000
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CommandError(Exception):
    """A failure the command reports in one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(manifest_file: Path, argv: list[str] | None = None) -> int:
    """Run the command line of a built output; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    try:
        manifest = read_manifest(manifest_file)
        runtime = runtime_from(manifest, manifest_file.parent)
        use_runtime(runtime)
        if args.command == "task" and args.action == "list":
            return list_tasks(runtime, manifest, args.json)
        cluster = cluster_from(manifest)
        runtime.coordinator = cluster
        if args.command == "task":
            return run_task(runtime, args.name, args.payload)
        return serve(runtime, manifest, args.host, args.port, cluster)
    except CommandError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.code


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CommandError(
            f"cannot read the task manifest '{path}': {error}; rebuild the output "
            "with 'nitro build'",
            1,
        ) from None
    return data


def runtime_from(manifest: dict[str, Any], bundle: Path) -> TaskRuntime:
    """The task runtime the manifest describes, with nothing imported yet."""
    entries = [TaskEntry.from_manifest(task) for task in manifest.get("tasks", [])]
    root = (bundle / manifest.get("sources", ".")).resolve()
    return TaskRuntime(entries, root=root, schedules=manifest.get("schedules", {}))


def cluster_from(manifest: dict[str, Any]) -> RedisCluster | None:
    """The Redis coordinator of NITRO_LOCK_URL or the config's lock URL."""
    from .cluster import LockUrlError, cluster_from_settings

    try:
        return cluster_from_settings(manifest.get("scheduler", {}).get("lock_url"))
    except LockUrlError as error:
        raise CommandError(str(error), 2) from None


def list_tasks(runtime: TaskRuntime, manifest: dict[str, Any], as_json: bool) -> int:
    from .listing import format_listing, task_listing

    listing = task_listing(runtime, manifest.get("timezone", "UTC"))
    text = json.dumps(listing, indent=2) if as_json else format_listing(listing)
    sys.stdout.write(text + "\n")
    return 0


def run_task(runtime: TaskRuntime, name: str, payload_text: str) -> int:
    payload = parse_payload(payload_text)
    try:
        result = runtime.run_sync(name, payload, {"source": "cli"})
    except TaskError as error:
        raise CommandError(str(error), 1) from None
    except Exception as error:
        message = f"task '{name}' failed: {type(error).__name__}: {error}"
        raise CommandError(message, 1) from None
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


def parse_payload(text: str) -> dict[str, Any]:
    """The --payload option as a dict; anything but a JSON object exits 2."""
    try:
        return payload_from_json(text)
    except ValueError as error:
        raise CommandError(str(error), 2) from None


def serve(
    runtime: TaskRuntime,
    manifest: dict[str, Any],
    host: str | None,
    port: int | None,
    cluster: RedisCluster | None = None,
) -> int:
    """Serve HTTP with the scheduler until SIGTERM or SIGINT."""
    from .server import ServerError
    from .server import serve as serve_http

    host = host or os.environ.get("NITRO_HOST") or os.environ.get("HOST") or "0.0.0.0"
    port = port or _port_from_environment()
    for number in STOP_SIGNALS:
        signal.signal(number, _exit_on_signal)
    try:
        serve_http(
            runtime,
            host=host,
            port=port,
            timezone=manifest.get("timezone", "UTC"),
            dev=False,
            token=os.environ.get("NITRO_TASKS_TOKEN") or None,
            app=manifest.get("app") or None,
            tick_lock=cluster,
        )
    except ServerError as error:
        raise CommandError(str(error), 1) from None
    return 0


def _exit_on_signal(number: int, frame: FrameType | None) -> None:
    """Exit 0 on a stop signal. While serving, uvicorn handles the signal
    itself, shuts down gracefully and then raises it again, which lands here;
    before it serves, this stops the start-up."""
    logger.info("stopped by %s", signal.Signals(number).name)
    raise SystemExit(0)


def _port_from_environment() -> int:
    for variable in ("NITRO_PORT", "PORT"):
        value = os.environ.get(variable)
        if not value:
            continue
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise CommandError(
                f"{variable} '{value}' is not a port number; use 1 to 65535", 2
            )
        return int(value)
    return DEFAULT_PORT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="index.py",
        description="Serve the tasks with the scheduler, or list and run them.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--host", help="default: HOST, then 0.0.0.0")
    parser.add_argument("--port", type=int, help="default: PORT, then 3000")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve HTTP with the scheduler (default)")
    serve.add_argument("--host", default=argparse.SUPPRESS)
    serve.add_argument("--port", type=int, default=argparse.SUPPRESS)

    task = commands.add_parser("task", help="list and run tasks without a server")
    actions = task.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="names, descriptions and schedules")
    listing.add_argument("--json", action="store_true", help="print JSON")
    run = actions.add_parser("run", help="run a task and print its result as JSON")
    run.add_argument("name")
    run.add_argument("--payload", default="{}", help="a JSON object")
    return parser
