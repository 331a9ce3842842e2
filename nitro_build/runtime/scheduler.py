"""The scheduler of the long-running server and the dev server.

It fires every cron pattern of the runtime's schedules at its instant and runs
that pattern's tasks through `TaskRuntime.run_cron`, so a tick that arrives
while a task still runs joins that run instead of starting a second one.

How it waits: a heap holds one (next instant, pattern) entry per pattern, and
the scheduler sleeps until the earliest one is due, so a wake costs the same
however many patterns sit idle. Instants are wall-clock time (`time.time()`),
because patterns name wall-clock times in the configured time zone. The event
loop sleeps on a monotonic clock and may wake a hair early; a sleep only ends
once the wall clock has reached the instant, so nothing fires early.

Wall-clock jumps:

- Forward (the clock is set ahead, the machine resumes from suspend, the event
  loop was blocked): a sleep is at most `LONGEST_NAP` seconds long, so the jump
  is noticed within that time. The overdue instant fires once, late; every
  instant missed after it is skipped with a warning, and the pattern's next
  instant is computed from the current time. Hours of missed ticks never fire
  in a burst.
- Backward: the scheduler keeps waiting for the instants it already planned,
  so the hour that repeats fires nothing a second time; ticks resume once the
  wall clock reaches the planned instant again.

Several processes can share one schedule through a `TickLock`: a tick runs
only where `acquire(pattern, instant_ms)` returns True.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any, Protocol

from .cron import Pattern, PatternExhausted, parse_pattern, resolve_timezone
from .runner import TaskOutcome, TaskRuntime

logger = logging.getLogger(__name__)

LONGEST_NAP = 60.0
"""The longest single sleep, in seconds: a forward clock jump shows within it."""

FINAL_APPROACH = 0.004
"""Seconds before an instant at which a sleep leaves the event loop's timer."""

PLAN_DELAY = 0.002
"""How long the loop lets fired ticks start before planning the next instants."""

UNWIND_WAIT = 1.0
"""How long `stop` waits for cancelled ticks to run their cleanup, in seconds."""


class Clock(Protocol):
    """Where the scheduler reads the time and waits; tests pass a fake one."""

    def now(self) -> float:
        """The current time, in epoch seconds."""
        ...

    async def sleep_until(self, moment: float) -> None:
        """Return once `now()` has reached `moment` (epoch seconds), not before."""
        ...


class TickLock(Protocol):
    """Decides whether this process runs a tick; False skips it here."""

    async def acquire(self, pattern: str, instant_ms: int) -> bool: ...


class SystemClock:
    """The wall clock, with sleeps that never end before it reaches the moment."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, moment: float) -> None:
        while (remaining := moment - time.time()) > FINAL_APPROACH:
            await asyncio.sleep(min(remaining - FINAL_APPROACH, LONGEST_NAP))

        # The event loop waits in whole milliseconds, rounded up; the last few
        # milliseconds are slept in a worker thread, which wakes on time.
        while (remaining := moment - time.time()) > 0:
            await asyncio.to_thread(time.sleep, remaining)


class OpenLock:
    """The tick lock of a single process: every tick runs."""

    async def acquire(self, pattern: str, instant_ms: int) -> bool:
        return True


@dataclass(frozen=True)
class _Tick:
    """One firing of a pattern, while its tasks run."""

    pattern: str
    instant: datetime
    names: tuple[str, ...]

    @property
    def instant_ms(self) -> int:
        return round(self.instant.timestamp() * 1000)

    def describe(self) -> str:
        return f"pattern '{self.pattern}' at {self.instant.isoformat()}"


class Scheduler:
    """Fires the runtime's schedules on asyncio until stopped."""

    def __init__(
        self,
        runtime: TaskRuntime,
        timezone: str = "UTC",
        *,
        clock: Clock | None = None,
        tick_lock: TickLock | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.runtime = runtime
        self.timezone = timezone
        self._zone = resolve_timezone(timezone)
        self._clock: Clock = clock or SystemClock()
        self._tick_lock: TickLock = tick_lock or OpenLock()
        self._context = dict(context or {})
        self._patterns: dict[str, Pattern] = {
            text: parse_pattern(text) for text, names in runtime.schedules.items()
        }
        self._heap: list[tuple[float, int, str]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._ticks: dict[asyncio.Task[None], _Tick] = {}
        self._hurry = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._loop_task is not None

    def upcoming(self) -> list[tuple[str, datetime]]:
        """Each pattern with tasks and its next instant, earliest first."""
        heap = self._heap if self.running else self._plan(self._clock.now())
        return [
            (text, datetime.fromtimestamp(instant, self._zone))
            for instant, _, text in sorted(heap)
        ]

    async def start(self) -> None:
        """Start firing; call from the event loop the tasks should run on."""
        if self.running:
            raise RuntimeError(
                "the scheduler is already running; call stop() before start()"
            )

        self._hurry = asyncio.Event()
        self._heap = self._plan(self._clock.now())
        self._loop_task = asyncio.create_task(self._loop(), name="nitro scheduler")

        if not self._heap:
            logger.info("scheduler started with no scheduled tasks; nothing to fire")
            return
        instant, _, text = self._heap[0]
        logger.info(
            "scheduler started: %d patterns in time zone %s; first is '%s' at %s",
            len(self._heap),
            self.timezone,
            text,
            datetime.fromtimestamp(instant, self._zone).isoformat(),
        )

    async def stop(self, grace: float = 30.0) -> None:
        """Stop firing, let running ticks finish within `grace` seconds, cancel
        the rest (logging the task names abandoned) and return."""
        loop_task, self._loop_task = self._loop_task, None
        if loop_task is None:
            return
        loop_task.cancel()
        await asyncio.wait([loop_task])

        running = list(self._ticks)
        if running and grace > 0:
            logger.info(
                "scheduler stopping: waiting up to %.1f s for %d running ticks",
                grace,
                len(running),
            )
            await self._wait_for(running, grace)

        left = [task for task in running if not task.done()]
        if left:
            logger.warning(
                "scheduler stopped with ticks still running after %.1f s; "
                "abandoning %s",
                grace,
                "; ".join(self._abandoned(self._ticks[task]) for task in left),
            )
            # A sync task in a worker thread cannot be interrupted: cancelling
            # only stops waiting for it, and its thread runs on to its end.
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=UNWIND_WAIT)
        logger.info("scheduler stopped")

    async def run_until_signal(self, grace: float = 30.0) -> None:
        """Run until SIGTERM or SIGINT, then stop with `grace`; a second signal
        abandons the running tasks at once. For processes without a server."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def on_signal(number: int) -> None:
            name = signal.Signals(number).name
            if stopping.is_set():
                logger.warning("%s again: abandoning running tasks now", name)
                self._hurry.set()
                return
            logger.info("%s received: stopping the scheduler", name)
            stopping.set()

        restore = _install_signal_handlers(loop, on_signal)
        try:
            await self.start()
            await stopping.wait()
            await self.stop(grace)
        finally:
            restore()

    def _plan(self, now: float) -> list[tuple[float, int, str]]:
        moment = datetime.fromtimestamp(now, self._zone)
        heap = []
        for order, (text, pattern) in enumerate(self._patterns.items()):
            if not self.runtime.schedules.get(text):
                logger.debug("pattern '%s' has no tasks; it never fires", text)
                continue
            upcoming = self._next_instant(text, pattern, moment)
            if upcoming is not None:
                heap.append((upcoming, order, text))
        heapq.heapify(heap)
        return heap

    def _next_instant(
        self, text: str, pattern: Pattern, moment: datetime
    ) -> float | None:
        try:
            return pattern.next_after(moment, self._zone).timestamp()
        except PatternExhausted as error:
            logger.warning("%s; it no longer fires", error)
        except Exception:
            logger.exception("pattern '%s': no next instant; it no longer fires", text)
        return None

    async def _loop(self) -> None:
        while self._heap:
            await self._clock.sleep_until(self._heap[0][0])

            now = self._clock.now()
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap))
                self._fire(due[-1][2], due[-1][0])

            # Planning the next instants costs a few hundred microseconds per
            # pattern; let the ticks just fired reach their tasks first.
            await asyncio.sleep(PLAN_DELAY)
            for instant, order, text in due:
                upcoming = self._following(text, instant, now)
                if upcoming is not None:
                    heapq.heappush(self._heap, (upcoming, order, text))

    def _following(self, text: str, instant: float, now: float) -> float | None:
        """The instant after this tick; the ones already past are skipped."""
        pattern = self._patterns[text]
        upcoming = self._next_instant(
            text, pattern, datetime.fromtimestamp(instant, self._zone)
        )
        if upcoming is None or upcoming > now:
            return upcoming

        logger.warning(
            "pattern '%s' fired %.1f s late (clock jump or blocked event loop); "
            "skipping the instants missed until now",
            text,
            now - instant,
        )
        return self._next_instant(
            text, pattern, datetime.fromtimestamp(now, self._zone)
        )

    def _fire(self, text: str, instant: float) -> None:
        tick = _Tick(
            pattern=text,
            instant=datetime.fromtimestamp(instant, self._zone),
            names=tuple(self.runtime.schedules.get(text, ())),
        )
        task = asyncio.create_task(
            self._run_tick(tick), name=f"nitro {tick.describe()}"
        )
        self._ticks[task] = tick
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._ticks.pop(task, None)

    async def _run_tick(self, tick: _Tick) -> None:
        try:
            if not await self._tick_lock.acquire(tick.pattern, tick.instant_ms):
                logger.debug(
                    "%s skipped: the tick lock is held elsewhere", tick.describe()
                )
                return

            logger.info(
                "pattern '%s' fired for %s: tasks %s",
                tick.pattern,
                tick.instant.isoformat(),
                ", ".join(tick.names),
            )
            started = time.perf_counter()
            outcomes = await self.runtime.run_cron(
                tick.pattern, tick.instant_ms, self._context
            )
            elapsed = (time.perf_counter() - started) * 1000
            logger.info(
                "%s done in %.1f ms: %s", tick.describe(), elapsed, _summary(outcomes)
            )
        except Exception:
            logger.exception("%s failed inside the scheduler", tick.describe())

    def _abandoned(self, tick: _Tick) -> str:
        running = set(self.runtime.running())
        names = [name for name in tick.names if name in running]
        if not names:
            return f"{tick.describe()} (no task started yet)"
        return f"{', '.join(names)} ({tick.describe()})"

    async def _wait_for(self, ticks: list[asyncio.Task[None]], grace: float) -> None:
        """Wait until the ticks end, `grace` seconds pass or a hurry is asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pending: set[asyncio.Future[Any]] = set(ticks)
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while pending and not self._hurry.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                _, pending = await asyncio.wait(
                    pending | {hurry},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                pending.discard(hurry)
        finally:
            hurry.cancel()


def _summary(outcomes: list[TaskOutcome]) -> str:
    return ", ".join(
        f"{outcome.name} {'ok' if outcome.ok else 'failed'}" for outcome in outcomes
    )


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]
) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `handler(number)`; returns the undo function."""
    numbers = (signal.SIGTERM, signal.SIGINT)
    try:
        for number in numbers:
            loop.add_signal_handler(number, handler, number)
    except NotImplementedError:
        previous: dict[int, Any] = {}

        def forward(number: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(handler, number)

        for number in numbers:
            previous[number] = signal.signal(number, forward)

        def restore_previous() -> None:
            for number, old in previous.items():
                signal.signal(number, old)

        return restore_previous

    def remove() -> None:
        for number in numbers:
            loop.remove_signal_handler(number)

    return remove
