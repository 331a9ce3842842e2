"""The task listing: what `GET /_nitro/tasks` and `task list` show.

The listing is plain JSON data: every task with its description, and every
schedule with its tasks and the next instant it fires, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .cron import parse_pattern, resolve_timezone
from .runner import TaskRuntime


def task_listing(
    runtime: TaskRuntime, timezone: str = "UTC", now: datetime | None = None
) -> dict[str, Any]:
    """Tasks with descriptions, schedules with their next run."""
    moment = now or datetime.now(UTC)
    zone = resolve_timezone(timezone)
    tasks = {
        name: {"description": runtime.description(name)} for name in runtime.names()
    }
    schedules = []
    for pattern, names in runtime.schedules.items():
        upcoming = parse_pattern(pattern).next_after(moment, zone)
        schedules.append(
            {"cron": pattern, "tasks": list(names), "next": _iso(upcoming)}
        )
    return {"tasks": tasks, "scheduledTasks": schedules}


def format_listing(listing: dict[str, Any]) -> str:
    """The listing as a table a person reads in a terminal."""
    tasks = listing.get("tasks", {})
    if not tasks:
        return "No tasks. Add a file under tasks/, e.g. tasks/db/migrate.py."

    schedules_of: dict[str, list[str]] = {}
    for schedule in listing.get("scheduledTasks", []):
        for name in schedule["tasks"]:
            schedules_of.setdefault(name, []).append(
                f"{schedule['cron']} (next {schedule['next']})"
            )

    width = max(len(name) for name in tasks)
    lines = []
    for name, meta in tasks.items():
        description = meta.get("description") or "-"
        lines.append(f"{name.ljust(width)}  {description}")
        for schedule in schedules_of.get(name, []):
            lines.append(f"{''.ljust(width)}  runs {schedule}")
    return "\n".join(lines)


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
