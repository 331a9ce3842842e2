"""`nitro init`: write a small working project to start from."""

from __future__ import annotations

from pathlib import Path

from .errors import NitroError

FILES = {
    "nitro.config.toml": """\
# nitro-build configuration; every key is described in the README.
[experimental]
tasks = true

[scheduled_tasks]
# Every day at 06:00 UTC.
"0 6 * * *" = ["report:daily"]
""",
    "tasks/hello/world.py": """\
from nitro_build import define_task


@define_task(description="Greet someone by name")
def world(event):
    name = event.payload.get("name", "world")
    return {"greeting": f"Hello, {name}!"}
""",
    "tasks/report/daily.py": """\
import logging

from nitro_build import define_task

logger = logging.getLogger(__name__)


@define_task(description="Write the daily report")
async def daily(event):
    logger.info("daily report for %s", event.payload.get("scheduledTime"))
    return {"result": "Success"}
""",
}


def write_project(directory: Path) -> list[Path]:
    """Write the starter files; refuses to overwrite any that exist."""
    targets = {directory / name: text for name, text in FILES.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise NitroError(
            f"'{directory}' already has {', '.join(existing)}; "
            "run 'nitro init' in an empty folder or a new one"
        )

    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(targets)
