"""nitro-build: background jobs as files, cron schedules in one config.

Only the runtime is imported here, so task files and built outputs can use
`from nitro_build import define_task, run_task` without the build tooling.
"""

from .runtime import (
    Task,
    TaskError,
    TaskEvent,
    TaskNotFound,
    TaskNotImplemented,
    define_task,
    run_cron_tasks,
    run_task,
    run_task_sync,
)

__version__ = "0.1.0"

__all__ = [
    "Task",
    "TaskError",
    "TaskEvent",
    "TaskNotFound",
    "TaskNotImplemented",
    "__version__",
    "define_task",
    "run_cron_tasks",
    "run_task",
    "run_task_sync",
]
