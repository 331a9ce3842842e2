"""Import task files and handlers, and pick out the one task each defines.

A task file must define exactly one `Task`; a config handler is either
"package.module:attr" or a path to a file (optionally "path.py:attr"). Every
failure is a `TaskLoadError` naming the file and, where known, the line.

`TaskCatalog` holds the known tasks and imports each on first use. The runner
builds on it to run tasks; the build uses it alone to import and check every
task, so checking a project never loads the event loop machinery.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import TaskError, TaskLoadError, TaskNotFound, TaskNotImplemented
from .task import Task, define_task


@dataclass(frozen=True)
class TaskEntry:
    """A known task before it is imported: its name and where it lives."""

    name: str
    file: str | None = None
    handler: str | None = None
    description: str | None = None

    @classmethod
    def from_manifest(cls, task: Mapping[str, Any]) -> TaskEntry:
        """An entry from one task of a build output's manifest."""
        return cls(
            str(task["name"]),
            file=task.get("file"),
            handler=task.get("handler"),
            description=task.get("description"),
        )


class TaskCatalog:
    """The tasks of one project by name, each imported on first use."""

    def __init__(self, entries: Iterable[TaskEntry], root: Path | str = ".") -> None:
        self.root = Path(root)
        self.entries = {entry.name: entry for entry in entries}
        self._loaded: dict[str, Task] = {}
        self._load_lock = threading.Lock()
        self._import_root: str | None = None

    def names(self) -> list[str]:
        return sorted(self.entries)

    def task(self, name: str) -> Task:
        """The task of this name, imported on first use."""
        entry = self.entries.get(name)
        if entry is None:
            raise TaskNotFound(name, list(self.entries))
        with self._load_lock:
            task = self._loaded.get(name)
            if task is None:
                task = self._import(entry)
                self._loaded[name] = task
        return task

    def description(self, name: str) -> str:
        """The description, from the entry if known, else from the task."""
        entry = self.entries.get(name)
        if entry is not None and entry.description is not None:
            return entry.description
        try:
            return self.task(name).description
        except TaskError:
            # A task that cannot load says why when it is run; listing it
            # without a description keeps the other tasks listable.
            return ""

    def _import(self, entry: TaskEntry) -> Task:
        if self._import_root is None:
            self._import_root = str(self.root.resolve())
        if self._import_root not in sys.path:
            sys.path.insert(0, self._import_root)
        return load_entry(entry, self.root)


def load_entry(entry: TaskEntry, root: Path) -> Task:
    """Import the task an entry points at; file paths are relative to root."""
    module_name = module_name_for(entry.name)
    if entry.handler:
        return load_handler(entry.handler, root, module_name)
    if entry.file:
        path = Path(entry.file)
        if not path.is_absolute():
            path = root / path
        module = load_file(path, module_name)
        return task_in_module(module, str(path))
    raise TaskNotImplemented(entry.name)


def module_name_for(name: str) -> str:
    """The module name a task file is imported under.

    It reads like the task name, so the task's own logger does too:
    `db:migrate` is `nitro_tasks.db.migrate`. Characters a module name cannot
    hold, the dot among them, are written as `__<hex>__`.
    """
    parts = (
        re.sub(r"[^A-Za-z0-9_]", lambda m: f"__{ord(m.group()):x}__", part)
        for part in name.split(":")
    )
    return "nitro_tasks." + ".".join(parts)


def load_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file under the given module name."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskLoadError("cannot be imported as a Python module", str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        del sys.modules[module_name]
        raise TaskLoadError(
            f"syntax error: {error.msg}", str(path), error.lineno
        ) from None
    except BaseException as error:
        del sys.modules[module_name]
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise TaskLoadError(
            f"import failed: {type(error).__name__}: {error}",
            str(path),
            _line_in(error, path),
        ) from error
    return module


def task_in_module(module: ModuleType, file: str) -> Task:
    """The single task a module defines; zero or several is an error."""
    found: list[Task] = []
    for value in vars(module).values():
        if isinstance(value, Task) and all(value is not t for t in found):
            found.append(value)

    if not found:
        raise TaskLoadError(
            "defines no task; assign define_task(...) to a module-level name "
            "or decorate a function with @define_task",
            file,
            1,
        )
    if len(found) > 1:
        lines = ", ".join(str(t.line) for t in found)
        raise TaskLoadError(
            f"defines {len(found)} tasks (lines {lines}); a task file holds "
            "exactly one, so move the others to files of their own",
            file,
            found[1].line,
        )
    return found[0]


def load_handler(handler: str, root: Path, module_name: str) -> Task:
    """Resolve a config handler ("module:attr" or a file path) to a task."""
    target, _, attr = handler.partition(":")
    if target.endswith(".py") or "/" in target:
        path = (root / target).resolve()
        if not path.is_file():
            raise TaskLoadError(
                f"handler '{handler}' names a file that does not exist", str(path)
            )
        module = load_file(path, module_name)
        file = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            raise TaskLoadError(
                f"handler '{handler}': cannot import module '{target}': {error}",
                target,
            ) from None
        file = getattr(module, "__file__", None) or target

    if not attr:
        return task_in_module(module, file)

    value = getattr(module, attr, None)
    if isinstance(value, Task):
        return value
    if callable(value):
        return define_task(run=value)
    raise TaskLoadError(
        f"handler '{handler}': '{attr}' is not a task or function in the module",
        file,
    )


def _line_in(error: BaseException, path: Path) -> int | None:
    """The deepest traceback line that lies in the given file."""
    wanted = str(path)
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == wanted:
            line = frame.lineno
    return line
