"""Import task files and handlers, and pick out the one task each defines.

A task file must define exactly one `Task`; a config handler is either
"package.module:attr" or a path to a file (optionally "path.py:attr"). Every
failure is a `TaskLoadError` naming the file and, where known, the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from .errors import TaskLoadError
from .task import Task, define_task


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
