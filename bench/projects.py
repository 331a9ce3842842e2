"""Generate synthetic projects for the benchmarks: N tasks, 20 schedules."""

from __future__ import annotations

from pathlib import Path

TASK = """\
from nitro_build import define_task


@define_task(description="Synthetic task {index}")
def run(event):
    return {{"task": {index}, "payload": event.payload}}
"""


def task_name(index: int) -> str:
    group, item = divmod(index, 50)
    return f"group{group:03d}:task{item:02d}"


def write_project(root: Path, tasks: int, schedules: int = 20) -> Path:
    """A project with `tasks` task files and `schedules` daily patterns.

    The patterns are plain 5-field daily times, so every preset accepts them.
    """
    for index in range(tasks):
        group, item = task_name(index).split(":")
        path = root / "tasks" / group / f"{item}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(TASK.format(index=index), encoding="utf-8")

    lines = ["[experimental]", "tasks = true", "", "[scheduled_tasks]"]
    for index in range(min(schedules, tasks)):
        pattern = f"{index} {index % 24} * * *"
        lines.append(f'"{pattern}" = ["{task_name(index)}"]')
    (root / "nitro.config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
