"""The task runtime: what ships inside every build output.

Nothing here imports outside the standard library, except the scheduler and
the pattern module, which use croniter. A process installs one `TaskRuntime`
with `use_runtime`; the module-level functions below call it, so task code
and the user's own app can simply `await run_task("db:migrate")`.

`TaskRuntime` and `TaskOutcome` are loaded with the runner on first use:
every task file imports this package for `define_task`, and neither those
imports nor the build's check of every task should pay for asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import TaskError, TaskLoadError, TaskNotFound, TaskNotImplemented
from .loader import TaskEntry
from .task import Task, TaskEvent, define_task

if TYPE_CHECKING:
    from .runner import TaskOutcome, TaskRuntime

__all__ = [
    "Task",
    "TaskEntry",
    "TaskError",
    "TaskEvent",
    "TaskLoadError",
    "TaskNotFound",
    "TaskNotImplemented",
    "TaskOutcome",
    "TaskRuntime",
    "current_runtime",
    "define_task",
    "run_cron_tasks",
    "run_task",
    "run_task_sync",
    "use_runtime",
]

_RUNNER_NAMES = ("TaskOutcome", "TaskRuntime")

_current: TaskRuntime | None = None


def __getattr__(name: str) -> Any:
    if name in _RUNNER_NAMES:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def use_runtime(runtime: TaskRuntime | None) -> None:
    """Make this runtime the one `run_task` and friends call."""
    global _current
    _current = runtime


def current_runtime() -> TaskRuntime:
    if _current is None:
        raise RuntimeError(
            "no task runtime is loaded in this process; run the code through "
            "'nitro dev', 'nitro task run' or a built server, or call "
            "use_runtime() first"
        )
    return _current


async def run_task(
    name: str,
    payload: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """Run a task by name and return what its function returned."""
    return await current_runtime().run(name, payload, context)


def run_task_sync(
    name: str,
    payload: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """`run_task` for code without an event loop."""
    return current_runtime().run_sync(name, payload, context)


async def run_cron_tasks(
    pattern: str,
    scheduled_time: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> list[TaskOutcome]:
    """Run every task scheduled under a pattern; failures are isolated."""
    return await current_runtime().run_cron(pattern, scheduled_time, context)
