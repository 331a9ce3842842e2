"""The task object a task file defines, and the event its function receives.

`define_task` works as a call (`define_task(meta=..., run=fn)`) and as a
decorator (`@define_task(description=...)` or bare `@define_task`). The task
remembers the file and line it was defined on, so discovery can point at it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

RunFunction = Callable[["TaskEvent"], Any]


@dataclass(frozen=True)
class TaskEvent:
    """What a task's `run` function receives."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One task: its function, its meta, and where it was defined."""

    run: RunFunction
    meta: dict[str, Any]
    file: str = ""
    line: int = 0

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def description(self) -> str:
        return str(self.meta.get("description") or "")


@overload
def define_task(run: RunFunction, /) -> Task: ...


@overload
def define_task(
    run: None = None,
    /,
    *,
    meta: dict[str, Any] | None = None,
    description: str | None = None,
    name: str | None = None,
) -> Callable[[RunFunction], Task]: ...


@overload
def define_task(
    *,
    run: RunFunction,
    meta: dict[str, Any] | None = None,
    description: str | None = None,
    name: str | None = None,
) -> Task: ...


def define_task(
    positional: RunFunction | None = None,
    /,
    *,
    run: RunFunction | None = None,
    meta: dict[str, Any] | None = None,
    description: str | None = None,
    name: str | None = None,
) -> Task | Callable[[RunFunction], Task]:
    """Define a task from a function, directly or as a decorator."""
    merged = dict(meta or {})
    if description is not None:
        merged["description"] = description
    if name is not None:
        merged["name"] = name

    caller = sys._getframe(1)
    file, line = caller.f_code.co_filename, caller.f_lineno

    function = positional or run
    if function is not None:
        return _make(function, merged, file, line)

    def decorate(function: RunFunction) -> Task:
        return _make(function, merged, file, line)

    return decorate


def _make(function: RunFunction, meta: dict[str, Any], file: str, line: int) -> Task:
    if not callable(function):
        raise TypeError(
            f"define_task needs a function for run, got {function!r} ({file}:{line})"
        )
    return Task(run=function, meta=meta, file=file, line=line)


def payload_from_json(text: str) -> dict[str, Any]:
    """A `--payload` argument as a dict; raises ValueError saying what is
    wrong with anything but a JSON object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--payload '{text}' is not valid JSON ({error.msg} at column "
            f'{error.colno}); pass an object such as \'{{"key": "value"}}\''
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"--payload '{text}' is a JSON {type(data).__name__}, not an object; "
            "wrap it, e.g. '{\"value\": ...}'"
        )
    return data
