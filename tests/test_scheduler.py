"""The scheduler: fire times on a fake clock, joins, failures, stop and grace.

Most tests run on `FakeClock`, whose sleeps return at once with the time moved
to the wake-up, so fire instants are checked exactly without waiting. Tasks
record what they saw into a list passed through the scheduler's context.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nitro_build.runtime import TaskEntry, TaskRuntime
from nitro_build.runtime.scheduler import Scheduler

START = datetime(2024, 3, 5, 12, 0, 0, tzinfo=UTC)

RECORD = """
@define_task
async def record(event):
    clock = event.context["clock"]
    event.context["fired"].append(
        (event.name, event.context["cron"], event.payload["scheduledTime"],
         round(clock.now() * 1000))
    )
    return event.name
"""

SLOW = """
@define_task
async def slow(event):
    event.context["fired"].append((event.name, event.payload["scheduledTime"]))
    await event.context["gate"].wait()
    return "done"
"""

BOOM = """
@define_task
async def boom(event):
    event.context["fired"].append((event.name, event.payload["scheduledTime"]))
    raise RuntimeError("disk full")
"""

NAP = """
import asyncio


@define_task
async def nap(event):
    await asyncio.sleep(0.2)
    event.context["fired"].append((event.name, "finished"))
"""

STUCK = """
import asyncio


@define_task
async def stuck(event):
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        event.context["fired"].append((event.name, "cancelled"))
        raise
"""

WALL = """
import time


@define_task
async def wall(event):
    event.context["fired"].append((event.payload["scheduledTime"], time.time()))
    if len(event.context["fired"]) >= 2:
        event.context["enough"].set()
"""


class FakeClock:
    """Time that jumps straight to each wake-up, and stands still past `until`.

    `late` maps an instant to how many seconds after it the wake-up comes,
    which is how a wall-clock jump or a blocked event loop looks from inside.
    """

    def __init__(
        self,
        start: datetime,
        until: datetime,
        late: dict[datetime, float] | None = None,
    ) -> None:
        self.current = start.timestamp()
        self.until = until.timestamp()
        self.late = {key.timestamp(): value for key, value in (late or {}).items()}
        self.parked = asyncio.Event()
        self.wakes = 0

    def now(self) -> float:
        return self.current

    async def sleep_until(self, moment: float) -> None:
        for _ in range(50):  # lets the ticks already fired make progress
            await asyncio.sleep(0)

        if moment > self.until:
            self.parked.set()
            await asyncio.Event().wait()

        self.wakes += 1
        self.current = max(self.current, moment + self.late.get(moment, 0.0))


def write_task(root: Path, name: str, body: str) -> TaskEntry:
    path = root / "tasks" / (name.replace(":", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("from nitro_build import define_task\n\n" + body)
    return TaskEntry(name, file=str(path))


def record_runtime(root: Path, schedules: dict[str, list[str]]) -> TaskRuntime:
    names = {name for names in schedules.values() for name in names}
    entries = [write_task(root, name, RECORD) for name in sorted(names)]
    return TaskRuntime(entries, root, schedules)


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


async def fire_until_parked(
    runtime: TaskRuntime,
    clock: FakeClock,
    context: dict[str, Any],
    timezone: str = "UTC",
    **options: Any,
) -> Scheduler:
    scheduler = Scheduler(runtime, timezone, clock=clock, context=context, **options)
    await scheduler.start()
    await clock.parked.wait()
    await scheduler.stop(grace=5)
    return scheduler


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="nitro_build.runtime")
    return caplog


def test_seconds_and_minute_patterns_fire_at_their_exact_instants(
    tmp_path: Path,
) -> None:
    runtime = record_runtime(
        tmp_path, {"*/10 * * * * *": ["ten"], "0 */2 * * * *": ["even"]}
    )
    clock = FakeClock(START, START + timedelta(minutes=2))
    fired: list[tuple[str, str, int, int]] = []

    run(fire_until_parked(runtime, clock, {"fired": fired, "clock": clock}))

    tens = [START + timedelta(seconds=10 * i) for i in range(1, 13)]
    expected = [("ten", "*/10 * * * * *", ms(t), ms(t)) for t in tens]
    expected.append(("even", "0 */2 * * * *", ms(tens[-1]), ms(tens[-1])))
    assert sorted(fired, key=lambda f: (f[2], f[0])) == sorted(
        expected, key=lambda f: (f[2], f[0])
    )


def test_patterns_sharing_an_instant_fire_on_the_same_wake(tmp_path: Path) -> None:
    runtime = record_runtime(
        tmp_path,
        {"*/15 * * * *": ["quarter"], "@hourly": ["hour"], "0 * * * *": ["top"]},
    )
    start = START + timedelta(minutes=7, seconds=30)
    clock = FakeClock(start, START + timedelta(hours=1))
    fired: list[tuple[str, str, int, int]] = []

    run(fire_until_parked(runtime, clock, {"fired": fired, "clock": clock}))

    quarters = [START + timedelta(minutes=m) for m in (15, 30, 45, 60)]
    assert [(f[0], f[2]) for f in fired if f[0] == "quarter"] == [
        ("quarter", ms(t)) for t in quarters
    ]
    top = ms(START + timedelta(hours=1))
    assert sorted((f[0], f[2], f[3]) for f in fired if f[2] == top) == [
        ("hour", top, top),
        ("quarter", top, top),
        ("top", top, top),
    ]
    assert clock.wakes == 4


def test_patterns_fire_in_the_configured_time_zone(tmp_path: Path) -> None:
    runtime = record_runtime(tmp_path, {"0 9 * * *": ["morning"]})
    clock = FakeClock(START, START + timedelta(days=3))
    fired: list[tuple[str, str, int, int]] = []

    scheduler = Scheduler(runtime, "Asia/Kolkata", clock=clock)
    [(pattern, first)] = scheduler.upcoming()
    run(
        fire_until_parked(
            runtime, clock, {"fired": fired, "clock": clock}, "Asia/Kolkata"
        )
    )

    kolkata = ZoneInfo("Asia/Kolkata")
    mornings = [datetime(2024, 3, day, 9, 0, tzinfo=kolkata) for day in (6, 7, 8)]
    assert [f[2] for f in fired] == [ms(t) for t in mornings]
    assert (pattern, first) == ("0 9 * * *", mornings[0])
    assert first.utcoffset() == timedelta(hours=5, minutes=30)


def test_a_slow_task_spanning_two_ticks_runs_once(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    runtime = TaskRuntime(
        [write_task(tmp_path, "slow", SLOW)], tmp_path, {"*/10 * * * * *": ["slow"]}
    )
    clock = FakeClock(START, START + timedelta(seconds=25))
    fired: list[tuple[str, int]] = []

    async def scenario() -> None:
        gate = asyncio.Event()
        scheduler = Scheduler(
            runtime, clock=clock, context={"fired": fired, "gate": gate}
        )
        await scheduler.start()
        await clock.parked.wait()
        gate.set()
        await scheduler.stop(grace=5)

    run(scenario())

    assert fired == [("slow", ms(START + timedelta(seconds=10)))]
    assert "task slow already running; joining that run" in logs.messages
    done = [m for m in logs.messages if " done in " in m]
    assert len(done) == 2
    assert all(m.endswith(": slow ok") for m in done)


def test_a_failing_task_spares_the_other_tasks_and_the_next_ticks(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    entries = [write_task(tmp_path, "boom", BOOM), write_task(tmp_path, "fine", RECORD)]
    runtime = TaskRuntime(entries, tmp_path, {"*/10 * * * * *": ["boom", "fine"]})
    clock = FakeClock(START, START + timedelta(seconds=30))
    fired: list[tuple[Any, ...]] = []

    run(fire_until_parked(runtime, clock, {"fired": fired, "clock": clock}))

    instants = [ms(START + timedelta(seconds=s)) for s in (10, 20, 30)]
    assert [f[1] for f in fired if f[0] == "boom"] == instants
    assert [f[2] for f in fired if f[0] == "fine"] == instants
    errors = [r for r in logs.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all(
        "boom" in r.getMessage() and "disk full" in r.getMessage() for r in errors
    )
    assert sum(m.endswith(": boom failed, fine ok") for m in logs.messages) == 3


def test_stop_waits_for_a_task_that_ends_within_the_grace(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    runtime = TaskRuntime(
        [write_task(tmp_path, "nap", NAP)], tmp_path, {"*/10 * * * * *": ["nap"]}
    )
    clock = FakeClock(START, START + timedelta(seconds=15))
    fired: list[tuple[str, str]] = []

    run(fire_until_parked(runtime, clock, {"fired": fired}))

    assert fired == [("nap", "finished")]
    assert not [r for r in logs.records if r.levelno >= logging.WARNING]


def test_stop_abandons_a_task_that_outlives_the_grace(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    runtime = TaskRuntime(
        [write_task(tmp_path, "stuck", STUCK)], tmp_path, {"*/10 * * * * *": ["stuck"]}
    )
    clock = FakeClock(START, START + timedelta(seconds=15))
    fired: list[tuple[str, str]] = []

    async def scenario() -> None:
        scheduler = Scheduler(runtime, clock=clock, context={"fired": fired})
        await scheduler.start()
        await clock.parked.wait()
        await scheduler.stop(grace=0.2)

    run(scenario(), timeout=5)

    assert fired == [("stuck", "cancelled")]
    [warning] = [r for r in logs.records if r.levelno == logging.WARNING]
    assert "abandoning stuck (pattern '*/10 * * * * *' at 2024-03-05T12:00:10" in (
        warning.getMessage()
    )
    assert runtime.running() == []


def test_a_tick_lock_that_says_no_skips_the_tick(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    class EveryOtherTick:
        def __init__(self) -> None:
            self.asked: list[tuple[str, int]] = []

        async def acquire(self, pattern: str, instant_ms: int) -> bool:
            self.asked.append((pattern, instant_ms))
            if len(self.asked) == 1:
                raise ConnectionError("lock store unreachable")
            return instant_ms % 20_000 == 0

    runtime = record_runtime(tmp_path, {"*/10 * * * * *": ["locked"]})
    clock = FakeClock(START, START + timedelta(seconds=60))
    lock = EveryOtherTick()
    fired: list[tuple[str, str, int, int]] = []

    run(
        fire_until_parked(
            runtime, clock, {"fired": fired, "clock": clock}, tick_lock=lock
        )
    )

    instants = [ms(START + timedelta(seconds=s)) for s in range(10, 61, 10)]
    assert [a[1] for a in lock.asked] == instants
    assert [f[2] for f in fired] == [t for t in instants[1:] if t % 20_000 == 0]
    skipped = [m for m in logs.messages if "tick lock is held elsewhere" in m]
    assert len(skipped) == 2
    assert any("failed inside the scheduler" in m for m in logs.messages)


def test_a_forward_clock_jump_fires_once_and_resumes_from_now(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    runtime = record_runtime(tmp_path, {"*/10 * * * * *": ["tick"]})
    jump = START + timedelta(seconds=20)
    clock = FakeClock(
        START, START + timedelta(hours=3, seconds=45), late={jump: 3 * 3600 + 0.5}
    )
    fired: list[tuple[str, str, int, int]] = []

    run(fire_until_parked(runtime, clock, {"fired": fired, "clock": clock}))

    after = START + timedelta(hours=3)
    assert [(f[2], f[3]) for f in fired] == [
        (ms(START + timedelta(seconds=10)), ms(START + timedelta(seconds=10))),
        (ms(jump), ms(after + timedelta(seconds=20.5))),
        (ms(after + timedelta(seconds=30)), ms(after + timedelta(seconds=30))),
        (ms(after + timedelta(seconds=40)), ms(after + timedelta(seconds=40))),
    ]
    assert any("fired 10800.5 s late" in m for m in logs.messages)


def test_an_empty_schedule_idles(tmp_path: Path) -> None:
    entry = write_task(tmp_path, "idle", RECORD)
    runtime = TaskRuntime([entry], tmp_path, {"* * * * *": []})
    clock = FakeClock(START, START + timedelta(days=1))

    async def scenario() -> Scheduler:
        scheduler = Scheduler(runtime, clock=clock)
        await scheduler.start()
        await asyncio.sleep(0.05)
        assert scheduler.upcoming() == []
        await scheduler.stop()
        return scheduler

    scheduler = run(scenario())

    assert clock.wakes == 0
    assert not clock.parked.is_set()
    assert not scheduler.running


def test_upcoming_lists_patterns_earliest_first(tmp_path: Path) -> None:
    runtime = record_runtime(
        tmp_path, {"0 3 * * *": ["nightly"], "*/5 * * * *": ["often"]}
    )
    clock = FakeClock(START + timedelta(minutes=1), START + timedelta(days=1))

    scheduler = Scheduler(runtime, clock=clock)

    assert scheduler.upcoming() == [
        ("*/5 * * * *", START + timedelta(minutes=5)),
        ("0 3 * * *", START + timedelta(hours=15)),
    ]


def test_every_second_fires_on_whole_seconds_never_early(tmp_path: Path) -> None:
    runtime = TaskRuntime(
        [write_task(tmp_path, "wall", WALL)], tmp_path, {"* * * * * *": ["wall"]}
    )
    fired: list[tuple[int, float]] = []

    async def scenario() -> None:
        enough = asyncio.Event()
        scheduler = Scheduler(runtime, context={"fired": fired, "enough": enough})
        await scheduler.start()
        try:
            await asyncio.wait_for(enough.wait(), 3.5)
        finally:
            await scheduler.stop(grace=1)

    run(scenario(), timeout=6)

    assert len(fired) >= 2
    for scheduled, seen in fired:
        assert scheduled % 1000 == 0
        assert seen * 1000 >= scheduled
    assert fired[1][0] - fired[0][0] == 1000


def test_run_until_signal_stops_on_sigterm(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    runtime = record_runtime(tmp_path, {"0 0 1 1 *": ["yearly"]})

    async def scenario() -> None:
        scheduler = Scheduler(runtime)
        serving = asyncio.create_task(scheduler.run_until_signal(grace=1))
        while not scheduler.running:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        await serving

    run(scenario(), timeout=5)

    assert "SIGTERM received: stopping the scheduler" in logs.messages
    assert logs.messages[-1] == "scheduler stopped"
