"""The `nitro` command line.

Each command imports what it needs when it runs, so `nitro --help` and
`nitro task run` stay quick. Errors the user can act on are `NitroError`s,
which click prints as one line; everything else shows its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from .errors import NitroError, UsageError


class Context:
    """What every command shares: the project folder."""

    def __init__(self, root: Path) -> None:
        self.root = root


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The project folder.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="nitro-build", prog_name="nitro")
@click.pass_context
def cli(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Define, run, schedule and deploy background jobs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    ctx.obj = Context(root.resolve())


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
def init(directory: Path) -> None:
    """Write a small working project into DIRECTORY."""
    from .scaffold import write_project

    written = write_project(directory)
    for path in written:
        click.echo(f"  created {path}")
    click.echo(
        f"Next: cd {directory} && nitro task run hello:world --local "
        '--payload \'{"name": "you"}\''
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@pass_context
def dev(context: Context, host: str, port: int) -> None:
    """Serve the tasks locally with the scheduler, reloading on change."""
    from .devserver import serve

    serve(context.root, host=host, port=port)


@cli.command()
@click.option("--preset", help="Build target (default: config, then node-server).")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: .output).",
)
@pass_context
def build(context: Context, preset: str | None, output: Path | None) -> None:
    """Write a ready-to-deploy folder for a platform."""
    from .build import build_project

    result = build_project(context.root, preset=preset, output=output)
    click.echo(result.summary())


@cli.command()
@click.option("--host", default=None, help="Default: HOST, then 0.0.0.0.")
@click.option("--port", default=None, type=int, help="Default: PORT, then 3000.")
@pass_context
def preview(context: Context, host: str | None, port: int | None) -> None:
    """Run the built server output."""
    from .preview import run_preview

    sys.exit(run_preview(context.root, host=host, port=port))


@cli.group()
def task() -> None:
    """List and run tasks."""


@task.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--local", is_flag=True, help="Read the project, not the dev server.")
@pass_context
def task_list(context: Context, as_json: bool, local: bool) -> None:
    """Names, descriptions, schedules and next runs."""
    from .runtime.listing import format_listing, task_listing

    if local:
        from .project import load_project

        project = load_project(context.root)
        listing = task_listing(project.runtime(), project.config.timezone)
    else:
        from .client import DevClient

        listing = DevClient.find(context.root).list_tasks()

    if as_json:
        click.echo(json.dumps(listing, indent=2))
    else:
        click.echo(format_listing(listing))


@task.command("run")
@click.argument("name")
@click.option("--payload", default="{}", help="A JSON object.", show_default=True)
@click.option("--local", is_flag=True, help="Run in this process, not on dev.")
@pass_context
def task_run(context: Context, name: str, payload: str, local: bool) -> None:
    """Run the task NAME and print its result as JSON."""
    data = parse_payload(payload)
    if local:
        result = run_local(context.root, name, data)
    else:
        from .client import DevClient

        result = DevClient.find(context.root).run_task(name, data)
    click.echo(json.dumps(result, indent=2, default=str))


def parse_payload(text: str) -> dict[str, Any]:
    """The --payload option as a dict; anything but a JSON object exits 2."""
    from .runtime.task import payload_from_json

    try:
        return payload_from_json(text)
    except ValueError as error:
        raise UsageError(str(error)) from None


def run_local(root: Path, name: str, payload: dict[str, Any]) -> Any:
    """Run a task in this process; its failure exits 1 with its message."""
    from .project import load_project
    from .runtime import TaskError, use_runtime

    runtime = load_project(root).runtime()
    use_runtime(runtime)
    try:
        return runtime.run_sync(name, payload, {"source": "cli"})
    except TaskError as error:
        raise NitroError(str(error)) from None
    except Exception as error:
        raise NitroError(
            f"task '{name}' failed: {type(error).__name__}: {error}"
        ) from None


def main() -> None:
    cli(prog_name="nitro")
