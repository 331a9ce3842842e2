"""Errors the task runtime raises, each carrying the HTTP status it maps to.

The runtime ships inside every build output, so these use nothing but the
standard library; the command line wraps them in its own exception family.
"""

from __future__ import annotations


class TaskError(Exception):
    """Base of every error the task runtime raises on purpose."""

    status = 500


class TaskNotFound(TaskError):
    """No task has the requested name."""

    status = 404

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        message = f"task '{name}' not found"
        if known:
            message += "; known tasks: " + ", ".join(sorted(known))
        super().__init__(message)


class TaskNotImplemented(TaskError):
    """The config declares the task but gives it no handler."""

    status = 501

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"task '{name}' has no handler; set tasks.\"{name}\".handler in the "
            "config or add a task file for it"
        )


class TaskLoadError(TaskError):
    """A task file or handler could not be imported or holds no single task."""

    def __init__(self, message: str, file: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")
