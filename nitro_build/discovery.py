"""Find task files under the tasks folder, without importing them.

`tasks/db/migrate.py` is the task `db:migrate`: the path under the folder,
without `.py`, with folders joined by `:`. Files and folders whose names start
with `_` or `.` are helpers, caches or hidden, and never tasks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FoundTask:
    """A task file: the name its path gives and where it is."""

    name: str
    file: Path


def task_name(relative: str | os.PathLike[str]) -> str:
    """The task name for a path relative to the tasks folder."""
    parts = os.fspath(relative).split(os.sep)
    parts[-1] = parts[-1].removesuffix(".py")
    return ":".join(part for part in parts if part)


def discover_tasks(tasks_dir: Path) -> list[FoundTask]:
    """Every task file under the folder, sorted by name."""
    if not tasks_dir.is_dir():
        return []

    found = []
    # Plain strings: this loop runs once per task file.
    top = str(tasks_dir)
    for folder, subfolders, files in os.walk(top):
        subfolders[:] = sorted(d for d in subfolders if not _hidden(d))
        relative = "" if folder == top else os.path.relpath(folder, top)
        for file in files:
            if _hidden(file) or not file.endswith(".py"):
                continue
            name = task_name(os.path.join(relative, file))
            found.append(FoundTask(name, Path(folder, file)))
    return sorted(found, key=lambda task: task.name)


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))
