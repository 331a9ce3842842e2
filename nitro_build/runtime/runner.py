"""Run tasks by name, one running instance per name.

`TaskRuntime` is a `TaskCatalog` (the known tasks, imported on first use) that
also holds the runs in flight. While a task runs, every other call of the same
name waits for that run and receives its result or its exception. The table of
runs in flight is guarded by a thread lock, so callers on different threads or
event loops still share a single run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import TaskError
from .loader import TaskCatalog, TaskEntry
from .task import Task, TaskEvent

logger = logging.getLogger(__name__)

# Pyodide (Cloudflare's Python Workers) cannot start threads; there a plain
# function runs on the event loop itself.
CAN_START_THREADS = sys.platform != "emscripten"


@dataclass(frozen=True)
class TaskOutcome:
    """How one task of a scheduled run ended."""

    name: str
    ok: bool
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "result": self.result, "durationMs": self.duration_ms}
        return {"ok": False, "error": self.error, "durationMs": self.duration_ms}


class Coordinator(Protocol):
    """Stretches "one running instance per name" across processes.

    `run` either calls `invoke` (this process owns the run) or waits for the
    run another process owns and returns its result or raises its error.
    """

    async def run(self, name: str, invoke: Callable[[], Awaitable[Any]]) -> Any: ...


class TaskRuntime(TaskCatalog):
    """The tasks of one project and the runs in flight."""

    def __init__(
        self,
        entries: Iterable[TaskEntry],
        root: Path | str = ".",
        schedules: Mapping[str, list[str]] | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        super().__init__(entries, root)
        self.coordinator = coordinator
        self.schedules = {p: list(names) for p, names in (schedules or {}).items()}
        self._running: dict[str, concurrent.futures.Future[Any]] = {}
        self._running_lock = threading.Lock()

    def running(self) -> list[str]:
        with self._running_lock:
            return sorted(self._running)

    async def run(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run a task, or join the run of it already in flight."""
        task = self.task(name)
        with self._running_lock:
            shared = self._running.get(name)
            owner = shared is None
            if shared is None:
                shared = self._running[name] = concurrent.futures.Future()

        if not owner:
            logger.debug("task %s already running; joining that run", name)
            return await asyncio.shield(asyncio.wrap_future(shared))

        event = TaskEvent(
            name=name, payload=dict(payload or {}), context=dict(context or {})
        )
        try:
            if self.coordinator is None:
                result = await self._invoke(task, event)
            else:
                result = await self.coordinator.run(
                    name, lambda: self._invoke(task, event)
                )
        except BaseException as error:
            shared.set_exception(error)
            _ = shared.exception()  # marks the exception as retrieved
            raise
        else:
            shared.set_result(result)
            return result
        finally:
            with self._running_lock:
                del self._running[name]

    def run_sync(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run a task from code that has no event loop of its own."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(name, payload, context))
        raise RuntimeError(
            "run_task_sync() was called inside a running event loop; "
            "use 'await run_task(...)' there instead"
        )

    async def run_cron(
        self,
        pattern: str,
        scheduled_time: int | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[TaskOutcome]:
        """Run every task of a pattern concurrently; one failing spares the rest."""
        names = self.schedules.get(pattern)
        if names is None:
            logger.warning("no tasks are scheduled for cron pattern '%s'", pattern)
            return []
        if scheduled_time is None:
            scheduled_time = int(time.time() * 1000)
        payload = {"scheduledTime": scheduled_time}
        merged = {**(context or {}), "cron": pattern}
        runs = [self._outcome(name, payload, merged) for name in names]
        return list(await asyncio.gather(*runs))

    async def _outcome(
        self, name: str, payload: dict[str, Any], context: dict[str, Any]
    ) -> TaskOutcome:
        try:
            self.task(name)
        except TaskError as error:
            logger.error("scheduled task %s could not start: %s", name, error)
            return TaskOutcome(name, False, error=_describe(error))

        started = time.perf_counter()
        try:
            result = await self.run(name, payload, context)
        except Exception as error:
            elapsed = (time.perf_counter() - started) * 1000
            return TaskOutcome(name, False, error=_describe(error), duration_ms=elapsed)
        elapsed = (time.perf_counter() - started) * 1000
        return TaskOutcome(name, True, result=result, duration_ms=elapsed)

    async def _invoke(self, task: Task, event: TaskEvent) -> Any:
        logger.info("task %s started", event.name)
        started = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(task.run):
                result = await task.run(event)
            else:
                if CAN_START_THREADS:
                    result = await asyncio.to_thread(task.run, event)
                else:
                    result = task.run(event)
                if inspect.isawaitable(result):
                    result = await result
        except BaseException as error:
            elapsed = (time.perf_counter() - started) * 1000
            logger.error(
                "task %s failed after %.1f ms: %s",
                event.name,
                elapsed,
                _describe(error),
                exc_info=isinstance(error, Exception),
            )
            raise
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("task %s finished in %.1f ms", event.name, elapsed)
        return result


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
