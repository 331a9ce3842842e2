import asyncio
import logging
import threading
from pathlib import Path

import pytest

import nitro_build
from nitro_build.runtime import (
    TaskEntry,
    TaskLoadError,
    TaskNotFound,
    TaskNotImplemented,
    TaskRuntime,
    use_runtime,
)


def write_task(root: Path, name: str, body: str) -> TaskEntry:
    path = root / "tasks" / (name.replace(":", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("from nitro_build import define_task\n\n" + body)
    return TaskEntry(name, file=str(path))


SLOW_COUNTER = """
import asyncio

runs = []


@define_task(description="Counts its runs")
async def slow(event):
    runs.append(event.payload)
    await asyncio.sleep(0.2)
    return {"run": len(runs)}
"""


def runs_of(runtime: TaskRuntime, name: str) -> list:
    module = __import__("sys").modules[runtime.task(name).run.__module__]
    return module.runs


async def test_many_concurrent_callers_share_one_run(tmp_path: Path) -> None:
    runtime = TaskRuntime([write_task(tmp_path, "slow", SLOW_COUNTER)], tmp_path)

    results = await asyncio.gather(*(runtime.run("slow", {"i": i}) for i in range(50)))

    assert results == [{"run": 1}] * 50
    assert runs_of(runtime, "slow") == [{"i": 0}]


async def test_next_call_after_the_run_ends_runs_again(tmp_path: Path) -> None:
    runtime = TaskRuntime([write_task(tmp_path, "slow", SLOW_COUNTER)], tmp_path)

    first = await runtime.run("slow")
    second = await runtime.run("slow")

    assert (first, second) == ({"run": 1}, {"run": 2})
    assert runtime.running() == []


def test_callers_on_many_threads_share_one_run(tmp_path: Path) -> None:
    runtime = TaskRuntime([write_task(tmp_path, "slow", SLOW_COUNTER)], tmp_path)
    runtime.task("slow")
    start = threading.Barrier(8)
    results: list = []

    def call() -> None:
        start.wait()
        results.append(runtime.run_sync("slow"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert results == [{"run": 1}] * 8
    assert len(runs_of(runtime, "slow")) == 1


async def test_every_waiting_caller_gets_the_same_exception(tmp_path: Path) -> None:
    entry = write_task(
        tmp_path,
        "fails",
        "import asyncio\n\ncalls = []\n\n\n@define_task\nasync def fails(event):\n"
        "    calls.append(1)\n    await asyncio.sleep(0.1)\n"
        "    raise ValueError('disk full')\n",
    )
    runtime = TaskRuntime([entry], tmp_path)

    outcomes = await asyncio.gather(
        *(runtime.run("fails") for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(o, ValueError) for o in outcomes)
    assert {str(o) for o in outcomes} == {"disk full"}
    assert len({id(o) for o in outcomes}) == 1
    module = __import__("sys").modules[runtime.task("fails").run.__module__]
    assert module.calls == [1]


async def test_sync_task_runs_in_a_worker_thread(tmp_path: Path) -> None:
    entry = write_task(
        tmp_path,
        "where",
        "import threading\n\n\n@define_task\ndef where(event):\n"
        "    return {'thread': threading.current_thread().name, "
        "'payload': event.payload, 'name': event.name}\n",
    )
    runtime = TaskRuntime([entry], tmp_path)

    result = await runtime.run("where", {"a": 1})

    assert result["thread"] != threading.current_thread().name
    assert result["payload"] == {"a": 1}
    assert result["name"] == "where"


async def test_sync_task_does_not_block_the_loop(tmp_path: Path) -> None:
    entry = write_task(
        tmp_path,
        "sleepy",
        "import time\n\n\n@define_task\ndef sleepy(event):\n"
        "    time.sleep(0.3)\n    return 'done'\n",
    )
    runtime = TaskRuntime([entry], tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    counting = asyncio.create_task(ticker())
    assert await runtime.run("sleepy") == "done"
    counting.cancel()

    assert ticks > 5


async def test_async_task_gets_context(tmp_path: Path) -> None:
    entry = write_task(
        tmp_path,
        "ctx",
        "@define_task\nasync def ctx(event):\n    return event.context\n",
    )
    runtime = TaskRuntime([entry], tmp_path)

    assert await runtime.run("ctx", context={"user": "ada"}) == {"user": "ada"}


async def test_unknown_name_is_not_found(tmp_path: Path) -> None:
    runtime = TaskRuntime([TaskEntry("db:migrate", file="x.py")], tmp_path)

    with pytest.raises(TaskNotFound) as caught:
        await runtime.run("db:migrat")

    assert caught.value.status == 404
    assert "task 'db:migrat' not found; known tasks: db:migrate" in str(caught.value)


async def test_task_without_handler_is_not_implemented(tmp_path: Path) -> None:
    runtime = TaskRuntime([TaskEntry("later")], tmp_path)

    with pytest.raises(TaskNotImplemented) as caught:
        await runtime.run("later")

    assert caught.value.status == 501


async def test_cron_run_isolates_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write_task(
        tmp_path, "good", "@define_task\ndef good(event):\n    return event.payload\n"
    )
    bad = write_task(
        tmp_path, "bad", "@define_task\ndef bad(event):\n    raise KeyError('gone')\n"
    )
    runtime = TaskRuntime(
        [good, bad], tmp_path, schedules={"* * * * *": ["bad", "good"]}
    )

    with caplog.at_level(logging.ERROR):
        outcomes = await runtime.run_cron("* * * * *", scheduled_time=1_700_000_000_000)

    by_name = {outcome.name: outcome for outcome in outcomes}
    assert by_name["good"].ok
    assert by_name["good"].result == {"scheduledTime": 1_700_000_000_000}
    assert not by_name["bad"].ok
    assert by_name["bad"].error == "KeyError: 'gone'"
    assert any("task bad failed" in r.getMessage() for r in caplog.records)


async def test_cron_run_passes_the_pattern_in_context(tmp_path: Path) -> None:
    entry = write_task(
        tmp_path, "ctx", "@define_task\ndef ctx(event):\n    return event.context\n"
    )
    runtime = TaskRuntime([entry], tmp_path, schedules={"0 * * * *": ["ctx"]})

    [outcome] = await runtime.run_cron("0 * * * *", context={"extra": 1})

    assert outcome.result == {"extra": 1, "cron": "0 * * * *"}


async def test_module_level_run_task_uses_the_installed_runtime(tmp_path: Path) -> None:
    entry = write_task(tmp_path, "one", "@define_task\ndef one(event):\n    return 1\n")
    use_runtime(TaskRuntime([entry], tmp_path))
    try:
        assert await nitro_build.run_task("one") == 1
    finally:
        use_runtime(None)


def test_run_task_sync_outside_a_loop(tmp_path: Path) -> None:
    entry = write_task(tmp_path, "one", "@define_task\ndef one(event):\n    return 1\n")
    use_runtime(TaskRuntime([entry], tmp_path))
    try:
        assert nitro_build.run_task_sync("one") == 1
    finally:
        use_runtime(None)


def test_run_task_without_a_runtime_explains(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no task runtime is loaded"):
        nitro_build.run_task_sync("one")


async def test_coordinator_wraps_the_owning_run(tmp_path: Path) -> None:
    entry = write_task(tmp_path, "one", "@define_task\ndef one(event):\n    return 1\n")
    seen = []

    class Recorder:
        async def run(self, name, invoke):  # type: ignore[no-untyped-def]
            seen.append(name)
            return await invoke()

    runtime = TaskRuntime([entry], tmp_path, coordinator=Recorder())

    assert await asyncio.gather(runtime.run("one"), runtime.run("one")) == [1, 1]
    assert seen == ["one"]


def test_tasks_import_lazily(tmp_path: Path) -> None:
    entry = write_task(tmp_path, "boom", "raise RuntimeError('imported')\n")
    runtime = TaskRuntime([entry], tmp_path)

    assert runtime.names() == ["boom"]
    with pytest.raises(TaskLoadError, match="import failed: RuntimeError: imported"):
        runtime.task("boom")


def test_task_modules_are_named_like_their_tasks() -> None:
    from nitro_build.runtime.loader import module_name_for

    assert module_name_for("db:migrate") == "nitro_tasks.db.migrate"
    assert module_name_for("report") == "nitro_tasks.report"
    assert module_name_for("cache.clear") == "nitro_tasks.cache__2e__clear"
    assert module_name_for("a:b") != module_name_for("a.b")


async def test_a_task_logs_under_its_own_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = write_task(
        tmp_path,
        "db:migrate",
        "import logging\n\nlogger = logging.getLogger(__name__)\n\n\n"
        "@define_task\ndef migrate(event):\n    logger.warning('migrating')\n",
    )
    runtime = TaskRuntime([entry], tmp_path)

    with caplog.at_level(logging.WARNING):
        await runtime.run("db:migrate")

    assert [r.name for r in caplog.records if r.message == "migrating"] == [
        "nitro_tasks.db.migrate"
    ]
