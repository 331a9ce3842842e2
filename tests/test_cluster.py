"""Tests for ticks and task runs shared by several processes through Redis.

Every test talks to a real redis-server of its own. The coordinator's rules
are checked in one process with several `RedisCluster` objects standing for
several processes; the end-to-end tests build the cluster fixture project and
run its server output several times over, each in a bare virtual environment.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio
from conftest import FIXTURES, RedisServer, free_port

from nitro_build.build import build_project
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
        assert "ticks skipped: 1" in back[0].getMessage() + back[1].getMessage()

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


class TestBuiltServers:
    """The server output, built with a lock URL and run in a bare venv."""

    def test_three_servers_run_each_tick_once(
        self, redis_server: RedisServer, built: Path, bare_python: Path, tmp_path: Path
    ) -> None:
        log = tmp_path / "ticks.log"
        environment = {LOCK_URL_VARIABLE: redis_server.url, "CLUSTER_LOG": str(log)}

        with servers(bare_python, built, 3, environment) as started:
            wait_for(lambda: len(ticks(log)) >= 4, started)
            # Mid-second no run is going, so the kill leaves no lease behind.
            time.sleep(1.5 - time.time() % 1)
            latest = tick_runners(log)[-1]
            winner = next(s for s in started if s.process.pid == latest)
            winner.process.kill()
            winner.process.wait(timeout=5)
            killed = time.time() * 1000
            wait_for(lambda: len([t for t in ticks(log) if t > killed]) >= 3)
            survivors = [server for server in started if server is not winner]
            codes = [server.stop() for server in survivors]

        recorded = ticks(log)
        assert [t for t, n in collections.Counter(recorded).items() if n > 1] == []
        before = sorted(t for t in recorded if t < killed)
        assert before == list(range(before[0], before[-1] + 1000, 1000))
        assert codes == [0, 0]
        assert (built / "server" / "_vendor" / "redis").is_dir()

    def test_run_task_at_once_in_two_servers_runs_once(
        self, redis_server: RedisServer, built: Path, bare_python: Path, tmp_path: Path
    ) -> None:
        log = tmp_path / "runs.log"
        environment = {
            LOCK_URL_VARIABLE: redis_server.url,
            "CLUSTER_LOG": str(log),
            "NITRO_TASKS_TOKEN": "t0ken",
        }

        def post(server: BuiltServer) -> httpx.Response:
            return httpx.post(
                f"{server.url}/_nitro/tasks/slow:once",
                headers={"Authorization": "Bearer t0ken"},
                timeout=15,
            )

        with (
            servers(bare_python, built, 2, environment) as started,
            ThreadPoolExecutor(len(started)) as pool,
        ):
            responses = list(pool.map(post, started))

        assert [r.status_code for r in responses] == [200, 200], responses[0].text
        assert responses[0].json() == responses[1].json()
        pid = responses[0].json()["pid"]
        runs = [line for line in log.read_text().splitlines() if line.startswith("run")]
        assert runs == [f"run {pid}"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cluster project's server output, moved to a folder of its own."""
    project = tmp_path_factory.mktemp("project") / "cluster"
    shutil.copytree(FIXTURES / "cluster", project)
    with (project / "nitro.config.toml").open("a", encoding="utf-8") as config:
        # Makes the build vendor redis; each test names its server through
        # NITRO_LOCK_URL, which wins over this.
        config.write('\n[scheduler]\nlock_url = "redis://127.0.0.1:1/0"\n')
    build_project(project)

    target = tmp_path_factory.mktemp("deployed") / "output"
    shutil.copytree(project / ".output", target)
    return target


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment without pip or packages."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    command = [sys.executable, "-m", "venv", "--without-pip", str(folder)]
    subprocess.run(command, check=True, timeout=60)
    return folder / "bin" / "python"


class BuiltServer:
    """`python server/index.py` of the output on a free loopback port."""

    def __init__(self, python: Path, output: Path, environment: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = output.parent / f"server-{self.port}.log"
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PYTHON", "NITRO_", "VIRTUAL_ENV"))
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(python), "server/index.py"],
                cwd=output,
                env={
                    **inherited,
                    **environment,
                    "HOST": "127.0.0.1",
                    "PORT": str(self.port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(f"{self.url}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def servers(
    python: Path, output: Path, count: int, environment: dict[str, str]
) -> Iterator[list[BuiltServer]]:
    """Start `count` servers of the output; all are killed on the way out."""
    started: list[BuiltServer] = []
    try:
        for _ in range(count):
            started.append(BuiltServer(python, output, environment))
        for server in started:
            server.wait_until_serving()
        yield started
    finally:
        for server in started:
            if server.process.poll() is None:
                server.process.kill()
            server.process.wait(timeout=5)


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


def wait_for(
    check: Callable[[], bool],
    started: list[BuiltServer] | None = None,
    timeout: float = 25.0,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for server in started or []:
            assert server.process.poll() is None, server.output()
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)
