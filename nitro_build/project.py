"""A user's project: its config and its tasks, checked as one.

`load_project` reads the config and finds the task files without importing
them; `check_tasks` imports every task and reports every problem at once. The
dev server, the build and `nitro task run --local` all start here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import Config, load_config
from .discovery import discover_tasks
from .errors import ConfigError, Problem
from .runtime import TaskEntry, TaskError, TaskLoadError
from .runtime.loader import TaskCatalog

if TYPE_CHECKING:
    from .runtime import TaskRuntime


@dataclass(frozen=True)
class Project:
    """The config plus every task it knows, by name."""

    config: Config
    entries: dict[str, TaskEntry]

    @property
    def root(self) -> Path:
        return self.config.root

    def runtime(self) -> TaskRuntime:
        """The tasks, ready to run (this loads the runner and asyncio)."""
        from .runtime.runner import TaskRuntime

        return TaskRuntime(
            self.entries.values(),
            root=self.config.src_dir,
            schedules=self.config.scheduled_tasks,
        )

    def catalog(self) -> TaskCatalog:
        """The tasks, to import and inspect without running them."""
        return TaskCatalog(self.entries.values(), root=self.config.src_dir)


def load_project(root: Path, *, preset: str | None = None) -> Project:
    """Read the config and find the tasks; raises ConfigError on problems."""
    config = load_config(root, preset=preset)
    entries = collect_entries(config)
    problems = schedule_problems(config, entries)
    if problems:
        raise ConfigError(problems)
    return Project(config, entries)


def collect_entries(config: Config) -> dict[str, TaskEntry]:
    """Scanned task files merged with the config's `tasks` table.

    A config handler wins over a scanned file of the same name; a config
    entry without a handler keeps the file and overrides its description.
    """
    if not config.experimental_tasks:
        return {}

    entries = {
        found.name: TaskEntry(found.name, file=str(found.file))
        for found in discover_tasks(config.tasks_dir)
    }
    for name, declared in config.tasks.items():
        scanned = entries.get(name)
        entries[name] = TaskEntry(
            name,
            file=None if declared.handler or scanned is None else scanned.file,
            handler=declared.handler,
            description=declared.description,
        )
    return dict(sorted(entries.items()))


def schedule_problems(config: Config, entries: dict[str, TaskEntry]) -> list[Problem]:
    """Scheduled names that match no task, and tasks config without the flag."""
    where = config.file.name if config.file else "config"
    if not config.experimental_tasks:
        used = [key for key in ("scheduled_tasks", "tasks") if getattr(config, key)]
        return [
            Problem(
                f"{where}: {key}",
                "tasks are an experimental feature and are off; set "
                "'experimental.tasks = true' in the config to use them",
            )
            for key in used
        ]

    problems = []
    for pattern, names in config.scheduled_tasks.items():
        for name in names:
            if name in entries:
                continue
            hint = difflib.get_close_matches(name, list(entries), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else _known(entries)
            problems.append(
                Problem(
                    f"{where}: scheduled_tasks.'{pattern}'",
                    f"task '{name}' does not exist; {fix}",
                )
            )
    return problems


def check_tasks(project: Project, catalog: TaskCatalog | None = None) -> list[Problem]:
    """Import every task and report every file that fails, at once."""
    catalog = catalog or project.catalog()
    problems = []
    for name, entry in project.entries.items():
        if entry.file is None and entry.handler is None:
            continue
        try:
            task = catalog.task(name)
        except TaskLoadError as error:
            problems.append(Problem(_where(error, project.root), error.reason))
            continue
        except TaskError as error:
            problems.append(Problem(f"task '{name}'", str(error)))
            continue
        if task.name is not None and task.name != name:
            problems.append(
                Problem(
                    _where_task(task.file, task.line, project.root),
                    f"meta name '{task.name}' disagrees with the task name "
                    f"'{name}' its path gives; remove meta.name or make it "
                    f"'{name}'",
                )
            )
    return problems


def _where(error: TaskLoadError, root: Path) -> str:
    return _where_task(error.file, error.line, root)


def _where_task(file: str, line: int | None, root: Path) -> str:
    path = Path(file)
    if path.is_absolute() and path.is_relative_to(root):
        file = str(path.relative_to(root))
    return f"{file}:{line}" if line else file


def _known(entries: dict[str, TaskEntry]) -> str:
    if not entries:
        return "no tasks exist yet; add a file under the tasks folder"
    return "known tasks: " + ", ".join(entries)
