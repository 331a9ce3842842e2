"""Tests for ticks and task runs shared by several processes through Redis.

Every test talks to a real redis-server of its own. The coordinator's rules
are checked in one process with several `RedisCluster` objects standing for
several processes; the end-to-end tests start real worker processes
(tests/cluster_worker.py: a TaskRuntime, a Scheduler and a RedisCluster).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from conftest import RedisServer

from nitro_build.project import load_project
from nitro_build.runtime.cluster import (
    LOCK_URL_VARIABLE,
    ClusterUnavailable,
    LockUrlError,
    RedisCluster,
    RemoteTaskFailed,
    cluster_from_settings,
    lock_url,
    mask_url,
)
from nitro_build.runtime.scheduler import Scheduler

WORKER = Path(__file__).parent / "cluster_worker.py"

pytestmark = pytest.mark.timeout(40)


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def fast_cluster(url: str, **options: Any) -> RedisCluster:
    """A cluster with short leases, so lost runs show within a second."""
    settings: dict[str, Any] = {
        "lease_ttl_ms": 600,
        "lease_renew_s": 0.1,
        "wait_check_s": 0.1,
    }
    return RedisCluster(url, **{**settings, **options})


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def waiters(url: str, name: str, count: int = 1) -> None:
    """Wait until `count` callers in other processes wait on task `name`."""
    client = redis.asyncio.Redis.from_url(url)
    channel = f"nitro:task:{{{name}}}:done"

    async def subscribed() -> bool:
        numbers = dict(await client.pubsub_numsub(channel))
        return int(numbers.get(channel.encode(), 0)) >= count

    try:
        await until(subscribed)
    finally:
        await client.aclose()


class TestSettings:
    def test_the_environment_wins_over_the_config(self) -> None:
        environ = {LOCK_URL_VARIABLE: "redis://env:6379/0"}
        assert lock_url("redis://config:6379/0", environ) == "redis://env:6379/0"
        assert lock_url("redis://config:6379/0", {}) == "redis://config:6379/0"
        assert lock_url(None, {LOCK_URL_VARIABLE: ""}) is None

    def test_no_url_means_no_cluster(self) -> None:
        assert cluster_from_settings(None, {}) is None

    def test_a_url_that_is_not_redis_names_itself(self) -> None:
        with pytest.raises(LockUrlError) as caught:
            RedisCluster("http://:hunter2@example:80/")
        message = str(caught.value)
        assert "'http://:***@example:80/'" in message
        assert "hunter2" not in message
        assert "redis://" in message

    def test_passwords_are_masked(self) -> None:
        assert mask_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
        assert mask_url("rediss://me:pw@host/1") == "rediss://me:***@host/1"
        assert (
            mask_url("redis://h/0?password=pw&db=1") == "redis://h/0?password=***&db=1"
        )
        assert mask_url("redis://host:6379") == "redis://host:6379"


class TestTickLock:
    def test_one_process_wins_each_tick(self, redis_server: RedisServer) -> None:
        async def scenario() -> None:
            clusters = [RedisCluster(redis_server.url) for _ in range(3)]

            won = await asyncio.gather(
                *(cluster.acquire("* * * * * *", 1_000) for cluster in clusters)
            )
            again = await clusters[1].acquire("* * * * * *", 1_000)
            other_pattern = await clusters[1].acquire("*/2 * * * * *", 1_000)
            next_instant = await clusters[2].acquire("* * * * * *", 2_000)

            assert sorted(won) == [False, False, True]
            assert (again, other_pattern, next_instant) == (False, True, True)
            for cluster in clusters:
                await cluster.close()

        run(scenario())


class TestRuns:
    def test_a_caller_elsewhere_gets_the_running_result(
        self, redis_server: RedisServer
    ) -> None:
        async def scenario() -> None:
            here, there = fast_cluster(redis_server.url), fast_cluster(redis_server.url)
            calls: list[str] = []

            async def first() -> dict[str, int]:
                calls.append("first")
                await waiters(redis_server.url, "job")
                await asyncio.sleep(1.0)  # longer than the lease: renewal keeps it
                return {"answer": 42}

            async def second() -> dict[str, int]:
                calls.append("second")
                return {"answer": 0}

            running = asyncio.create_task(here.run("job", first))
            await until(lambda: asyncio.sleep(0, bool(calls)))
            joined = await there.run("job", second)

            assert await running == {"answer": 42}
            assert joined == {"answer": 42}
            assert calls == ["first"]

            assert await there.run("job", second) == {"answer": 0}
            assert calls == ["first", "second"]

        run(scenario())

    def test_a_caller_elsewhere_gets_the_error(self, redis_server: RedisServer) -> None:
        async def scenario() -> None:
            here, there = fast_cluster(redis_server.url), fast_cluster(redis_server.url)

            async def failing() -> None:
                await waiters(redis_server.url, "job")
                raise ValueError("disk 'data' is full")

            async def unused() -> None:
                raise AssertionError("the joined run must not start")

            running = asyncio.create_task(here.run("job", failing))
            await until(lambda: redis_has(redis_server.url, "nitro:task:{job}:lease"))

            with pytest.raises(RemoteTaskFailed) as caught:
                await there.run("job", unused)
            with pytest.raises(ValueError):
                await running

            error = caught.value
            assert (error.error_type, error.remote_message) == (
                "ValueError",
                "disk 'data' is full",
            )
            assert error.status == 500
            assert "task 'job' failed in process" in str(error)

        run(scenario())

    def test_a_result_that_is_not_json_stays_local(
        self, redis_server: RedisServer
    ) -> None:
        async def scenario() -> None:
            here, there = fast_cluster(redis_server.url), fast_cluster(redis_server.url)

            async def returns_a_set() -> set[int]:
                await waiters(redis_server.url, "job")
                return {1, 2}

            async def unused() -> None:
                raise AssertionError("the joined run must not start")

            running = asyncio.create_task(here.run("job", returns_a_set))
            await until(lambda: redis_has(redis_server.url, "nitro:task:{job}:lease"))

            with pytest.raises(RemoteTaskFailed) as caught:
                await there.run("job", unused)
            assert await running == {1, 2}
            assert caught.value.error_type == "TypeError"
            assert "not JSON-serialisable" in str(caught.value)

        run(scenario())

    def test_a_killed_holder_leaves_no_stuck_lease(
        self, redis_server: RedisServer
    ) -> None:
        async def scenario() -> None:
            cluster = fast_cluster(redis_server.url)
            client = redis.asyncio.Redis.from_url(redis_server.url)
            # What a process killed mid-run leaves behind: a lease nobody renews.
            await client.set("nitro:task:{job}:lease", "gone:1:abc", px=300)
            await client.aclose()

            async def later() -> str:
                return "ran"

            with pytest.raises(
                RemoteTaskFailed, match="stopped before the run finished"
            ):
                await cluster.run("job", later)
            assert await cluster.run("job", later) == "ran"

        run(scenario())


class TestOutage:
    def test_redis_stopped_mid_run(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def scenario() -> None:
            server = RedisServer(tmp_path, password="s3cret")
            server.start()
            try:
                await self.check_outage(server, caplog)
            finally:
                server.stop()

        run(scenario())

    async def check_outage(
        self, server: RedisServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        here, there = fast_cluster(server.url), fast_cluster(server.url)
        release = asyncio.Event()

        async def long_run() -> str:
            await release.wait()
            return "finished here"

        async def unused() -> None:
            raise AssertionError("nothing may start while Redis is down")

        caplog.set_level(logging.DEBUG, "nitro_build.runtime.cluster")
        running = asyncio.create_task(here.run("job", long_run))
        await until(lambda: redis_has(server.url, "nitro:task:{job}:lease"))
        joined = asyncio.create_task(there.run("job", unused))
        await waiters(server.url, "job")

        server.stop()
        await asyncio.sleep(0.3)  # a few failed lease renewals
        release.set()

        assert await running == "finished here"
        with pytest.raises(ClusterUnavailable, match="may still finish there"):
            await joined
        with pytest.raises(ClusterUnavailable) as refused:
            await there.run("other", unused)
        assert refused.value.status == 503
        assert await here.acquire("* * * * * *", 5_000) is False

        server.start()
        assert await here.acquire("* * * * * *", 6_000) is True
        assert await there.acquire("* * * * * *", 6_000) is False

        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        back = [r for r in caplog.records if "reachable again after" in r.getMessage()]
        masked = f"redis://:***@127.0.0.1:{server.port}/0"
        assert len(errors) == 2  # once per cluster object, i.e. per process
        assert all(masked in r.getMessage() for r in errors + back)
        assert "s3cret" not in caplog.text
        assert len(back) == 2
        assert "1 ticks were skipped" in back[0].getMessage() + back[1].getMessage()

    def test_ticks_are_skipped_while_redis_is_down(
        self,
        redis_server: RedisServer,
        copy_fixture: Callable[[str], Path],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        async def scenario() -> None:
            log = tmp_path / "ticks.log"
            monkeypatch.setenv("CLUSTER_LOG", str(log))
            runtime = load_project(copy_fixture("cluster")).runtime()
            cluster = fast_cluster(redis_server.url)
            runtime.coordinator = cluster
            scheduler = Scheduler(runtime, tick_lock=cluster)

            await scheduler.start()
            try:
                await until(lambda: asyncio.sleep(0, len(ticks(log)) >= 1))
                redis_server.stop()
                stopped = time.time() * 1000
                await asyncio.sleep(2.2)
                restarted = time.time() * 1000
                redis_server.start()
                await until(lambda: asyncio.sleep(0, max(ticks(log)) > restarted))
            finally:
                await scheduler.stop(grace=2.0)

            during = [t for t in ticks(log) if stopped < t < restarted]
            assert during == []

        run(scenario())


class TestProcesses:
    def test_three_servers_run_each_tick_once(
        self,
        redis_server: RedisServer,
        copy_fixture: Callable[[str], Path],
        tmp_path: Path,
    ) -> None:
        root = copy_fixture("cluster")
        with (root / "nitro.config.toml").open("a", encoding="utf-8") as config:
            config.write(f'\n[scheduler]\nlock_url = "{redis_server.url}"\n')
        log = tmp_path / "ticks.log"

        with workers(tmp_path, log, [["schedule", str(root)]] * 3) as processes:
            wait_for(lambda: len(ticks(log)) >= 4, processes)
            latest = tick_runners(log)[-1]
            winner = next(p for p in processes if p.pid == latest)
            winner.send_signal(signal.SIGKILL)
            winner.wait(timeout=5)
            killed = time.time() * 1000
            wait_for(lambda: len([t for t in ticks(log) if t > killed]) >= 3)
            survivors = [p for p in processes if p is not winner]
            for process in survivors:
                process.send_signal(signal.SIGTERM)
            for process in survivors:
                assert process.wait(timeout=10) == 0

        recorded = ticks(log)
        assert [t for t, n in collections.Counter(recorded).items() if n > 1] == []
        before = sorted(t for t in recorded if t < killed - 1000)
        assert before == list(range(before[0], before[-1] + 1000, 1000))

    def test_run_task_at_once_in_two_servers_runs_once(
        self,
        redis_server: RedisServer,
        copy_fixture: Callable[[str], Path],
        tmp_path: Path,
    ) -> None:
        root = copy_fixture("cluster")
        log = tmp_path / "runs.log"
        command = ["run", str(root), "slow:once"]
        environ = {LOCK_URL_VARIABLE: redis_server.url}

        with workers(tmp_path, log, [command] * 2, environ) as processes:
            for process in processes:
                assert read_line(process) == "ready"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
                process.stdin.flush()
            outcomes = [json.loads(read_line(process)) for process in processes]

        assert outcomes[0] == outcomes[1]
        assert outcomes[0]["ok"] is True, outcomes
        assert log.read_text().splitlines() == [f"run {outcomes[0]['result']['pid']}"]


async def redis_has(url: str, key: str) -> bool:
    client = redis.asyncio.Redis.from_url(url)
    try:
        return bool(await client.exists(key))
    finally:
        await client.aclose()


def ticks(log: Path) -> list[int]:
    """The scheduled instants the tick task recorded, in the order run."""
    return [instant for instant, _ in recorded_ticks(log)]


def tick_runners(log: Path) -> list[int]:
    """The process id that ran each recorded tick."""
    return [pid for _, pid in recorded_ticks(log)]


def recorded_ticks(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [
        (int(line.split()[1]), int(line.split()[2]))
        for line in lines
        if line.startswith("tick ")
    ]


@contextlib.contextmanager
def workers(
    folder: Path,
    log: Path,
    commands: list[list[str]],
    environ: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start one worker process per command; all are killed on the way out."""
    env = {k: v for k, v in os.environ.items() if k != LOCK_URL_VARIABLE}
    env.update(environ or {}, CLUSTER_LOG=str(log))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for number, command in enumerate(commands):
            stderr = open(folder / f"worker-{number}.log", "wb")  # noqa: SIM115
            with stderr:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, str(WORKER), *command],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=stderr,
                        env=env,
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


def wait_for(
    check: Callable[[], bool],
    processes: list[subprocess.Popen[bytes]] | None = None,
    timeout: float = 15.0,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for process in processes or []:
            assert process.poll() is None, "a worker exited early"
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def read_line(process: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    """One line of the process's output, failing instead of hanging."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout} s")
    return process.stdout.readline().decode().strip()
