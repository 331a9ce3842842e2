"""Share one schedule and one running instance per task across processes.

A server deployed as several processes or machines runs one scheduler in each.
Given a Redis URL (`NITRO_LOCK_URL`, or `scheduler.lock_url` in the config), the
server passes one `RedisCluster` to its scheduler as the tick lock and to its
`TaskRuntime` as the coordinator. Without a URL nothing here is used.

Ticks. Every process tries `SET nitro:tick:{<pattern>}:<instant ms> NX PX`; the
one that wins runs the tick and the others skip it. The key stays for
`TICK_LOCK_TTL_MS`, long after the tick, so a process whose clock or event loop
runs late cannot win the same instant again.

Task runs. The process that runs a task holds `nitro:task:{<name>}:lease`
(its value is the run id) and renews it every `LEASE_RENEW_S` while the task
runs. When the run ends, its outcome is stored as JSON under
`nitro:task:{<name>}:result:<run id>` for `RESULT_TTL_MS` and the run id is
published on `nitro:task:{<name>}:done`. A caller in another process waits for
that run and gets the same result, or a `RemoteTaskFailed` carrying the error's
type and message. Results cross processes as JSON, so a task whose callers may
sit in other processes should return plain data (dict, list, str, int, float,
bool, None); the caller in the running process still gets the object itself. A
process killed mid-run stops renewing, its lease runs out after `LEASE_TTL_MS`,
and whoever waited on that run gets a `RemoteTaskFailed` saying so.

When Redis cannot be reached, both fail closed: a tick is skipped in every
process, and a new run is refused with `ClusterUnavailable` (HTTP 503). Running
the tick anyway would fire it once per process at the same moment, and the
task code may not be idempotent: mails sent twice, rows written twice, two runs
racing on the same data. A setup with a lock URL has asked for exactly one run
per tick, and platforms that may deliver a tick twice do it rarely and one
after the other, not once per replica in parallel. A skipped tick is not
replayed; the next one runs as usual once Redis is back, so a job that must
never miss a period should catch up on its own (for example by remembering
when it last succeeded). A run already going when Redis goes away carries on
and its local caller gets the result; callers waiting in other processes get
`ClusterUnavailable`. Should the outage outlast the lease, the running process
takes the lease back when Redis answers, unless another process has started
the task by then, which it logs. The outage is logged once, as an error naming the URL
with its password masked, and its end once, with the number of ticks skipped.

The `redis` package is imported only when a `RedisCluster` is made; it is the
optional extra `nitro-build[redis]`, and a build vendors it into the output
when the config sets `scheduler.lock_url`. The config's URL is written into
the output's manifest, so the config refuses one with a password: that belongs
in `NITRO_LOCK_URL`, which wins at run time. Keys
wrap the pattern or task name in braces so a run's keys share one Redis
Cluster slot; apps sharing one Redis should each use their own database number
or `prefix`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import TaskError

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_URL_VARIABLE = "NITRO_LOCK_URL"
"""The environment variable naming the Redis URL; it wins over the config."""

TICK_LOCK_TTL_MS = 10 * 60 * 1000
"""How long a tick's key stays: longer than any clock skew between processes."""

LEASE_TTL_MS = 15_000
"""How long a run's lease lives without renewal: a killed process blocks the
task for at most this long."""

LEASE_RENEW_S = 5.0
"""How often the running process renews its lease, in seconds."""

RESULT_TTL_MS = 60_000
"""How long a finished run's outcome stays readable for waiting callers."""

WAIT_CHECK_S = 1.0
"""How often a waiting caller checks that the run it waits for is still alive."""

REDIS_TIMEOUT_S = 2.0
"""Connect and reply timeout of each Redis command, in seconds."""

# Extend the lease while it is ours; take it back when it vanished (Redis
# restarted, or an outage outlived it), unless the run has finished: a renewal
# sent just before the end can reach Redis after the lease was freed.
_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 1
end
if redis.call('exists', KEYS[2]) == 1 then
    return 3
end
if not holder then
    redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
    return 2
end
return 0
"""

# Store the outcome, free the lease if still ours, wake the waiting callers.
_FINISH = """
redis.call('set', KEYS[2], ARGV[2], 'px', ARGV[3])
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
end
redis.call('publish', ARGV[4], ARGV[1])
return 1
"""


class LockUrlError(ValueError):
    """The lock URL cannot be used: malformed, or the redis package is missing."""


class ClusterUnavailable(TaskError):
    """Redis is unreachable, so a run across processes cannot be coordinated."""

    status = 503

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"task '{name}' {message}")


class RemoteTaskFailed(TaskError):
    """The run this caller joined, in another process, ended without a result."""

    def __init__(
        self,
        name: str,
        holder: str,
        message: str,
        error_type: str | None = None,
        status: int = 500,
    ) -> None:
        self.name = name
        self.holder = holder
        self.error_type = error_type
        self.remote_message = message
        self.status = status
        reason = f"{error_type}: {message}" if error_type else message
        super().__init__(f"task '{name}' failed in process {holder}: {reason}")


def lock_url(
    configured: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Redis URL to coordinate through: the environment's, else the config's."""
    environ = os.environ if environ is None else environ
    return environ.get(LOCK_URL_VARIABLE) or configured or None


def cluster_from_settings(
    configured: str | None = None, environ: Mapping[str, str] | None = None
) -> RedisCluster | None:
    """A `RedisCluster` when a lock URL is set, else None (one process alone)."""
    url = lock_url(configured, environ)
    if not url:
        return None
    cluster = RedisCluster(url)
    logger.info("ticks and task runs are shared through Redis at %s", cluster.where)
    return cluster


def mask_url(url: str) -> str:
    """The URL with its password (in the user part or the query) replaced."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}:***@{host}"
    query = urlencode(
        [
            (key, "***" if key == "password" else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class RedisCluster:
    """A tick lock and a task run coordinator backed by one Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "nitro",
        tick_ttl_ms: int = TICK_LOCK_TTL_MS,
        lease_ttl_ms: int = LEASE_TTL_MS,
        lease_renew_s: float = LEASE_RENEW_S,
        result_ttl_ms: int = RESULT_TTL_MS,
        wait_check_s: float = WAIT_CHECK_S,
    ) -> None:
        self.url = url
        self.where = mask_url(url)
        self.prefix = prefix
        self.tick_ttl_ms = tick_ttl_ms
        self.lease_ttl_ms = lease_ttl_ms
        self.lease_renew_s = lease_renew_s
        self.result_ttl_ms = result_ttl_ms
        self.wait_check_s = wait_check_s
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self._redis = _import_redis(self.where)
        self._errors: tuple[type[BaseException], ...] = (
            self._redis.RedisError,
            OSError,
        )
        self._health = _Health(self.where)
        self._home: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._home_lock = threading.Lock()

        try:
            self._redis.asyncio.ConnectionPool.from_url(url)
        except ValueError as error:
            raise LockUrlError(
                f"lock URL '{self.where}' ({LOCK_URL_VARIABLE} or "
                f"scheduler.lock_url) is not a Redis URL: {error}; use "
                "redis://[:password@]host[:port][/db], rediss://... or "
                "unix:///path/to/socket"
            ) from None

    async def close(self) -> None:
        """Close the connections opened on the current event loop."""
        with self._home_lock:
            home, self._home = self._home, None
        if home is not None and home[0] is asyncio.get_running_loop():
            await home[1].aclose()

    async def acquire(self, pattern: str, instant_ms: int) -> bool:
        """True in exactly one process per (pattern, instant); False elsewhere,
        and everywhere while Redis is unreachable."""
        return await self.claim_tick(pattern, instant_ms) is True

    async def claim_tick(self, pattern: str, instant_ms: int) -> bool | None:
        """`acquire`, but None rather than False while Redis is unreachable,
        for a caller that answers a lost tick and an outage differently."""
        key = f"{self.prefix}:tick:{{{pattern}}}:{instant_ms}"
        try:
            won = await self._attempt(
                lambda client: client.set(
                    key, self.process, nx=True, px=self.tick_ttl_ms
                )
            )
        except _Unreachable:
            self._health.skipped()
            logger.debug(
                "tick of '%s' at %d skipped: Redis is unreachable", pattern, instant_ms
            )
            return None

        return bool(won)

    async def run(self, name: str, invoke: Callable[[], Awaitable[Any]]) -> Any:
        """Run the task here holding its lease, or wait for the run that holds
        it in another process and return that run's result."""
        while True:
            run_id = f"{self.process}:{uuid.uuid4().hex[:12]}"
            try:
                holder = await self._claim(name, run_id)
            except _Unreachable:
                raise ClusterUnavailable(
                    name,
                    f"was not run: Redis at {self.where} is unreachable, so one "
                    "running instance across processes cannot be guaranteed",
                ) from None

            if holder == run_id:
                return await self._own(name, run_id, invoke)
            if holder is not None:
                return await self._join(name, holder)
            # The other run ended between the two commands of the claim.

    async def _claim(self, name: str, run_id: str) -> str | None:
        """Take the lease for `run_id`; else the run id that holds it, if any."""
        lease = self._key(name, "lease")
        won = await self._attempt(
            lambda client: client.set(lease, run_id, nx=True, px=self.lease_ttl_ms)
        )
        if won:
            return run_id
        holder = await self._attempt(lambda client: client.get(lease))
        return None if holder is None else str(holder)

    async def _own(
        self, name: str, run_id: str, invoke: Callable[[], Awaitable[Any]]
    ) -> Any:
        renewal = asyncio.create_task(
            self._renew(name, run_id), name=f"nitro lease of {name}"
        )
        try:
            result = await invoke()
        except BaseException as error:
            await _stop(renewal)
            await self._finish(name, run_id, _failure(error))
            raise

        await _stop(renewal)
        await self._finish(name, run_id, _success(name, result))
        return result

    async def _renew(self, name: str, run_id: str) -> None:
        keys = (self._key(name, "lease"), self._key(name, "result", run_id))
        while True:
            await asyncio.sleep(self.lease_renew_s)
            try:
                state = await self._attempt(
                    lambda client: client.eval(
                        _RENEW, 2, *keys, run_id, self.lease_ttl_ms
                    )
                )
            except _Unreachable:
                continue

            if state == 2:
                logger.warning(
                    "the lease of task %s had run out (Redis restarted or was "
                    "unreachable too long); this process took it back",
                    name,
                )
            elif state == 0:
                logger.warning(
                    "the lease of task %s ran out before it was renewed and "
                    "another process has started the task too; this run goes on",
                    name,
                )
                return

    async def _finish(self, name: str, run_id: str, outcome: str) -> None:
        """Store the outcome, free the lease and wake the waiting callers."""
        keys = (self._key(name, "lease"), self._key(name, "result", run_id))
        channel = self._key(name, "done")
        try:
            await self._attempt(
                lambda client: client.eval(
                    _FINISH, 2, *keys, run_id, outcome, self.result_ttl_ms, channel
                )
            )
        except _Unreachable:
            logger.warning(
                "the outcome of task %s could not be shared: Redis at %s is "
                "unreachable; callers waiting in other processes will not get it",
                name,
                self.where,
            )

    async def _join(self, name: str, holder: str) -> Any:
        logger.info(
            "task %s is running in process %s; waiting for that run", name, holder
        )
        try:
            async with self._client() as client:
                text = await self._outcome_of(client, name, holder)
        except self._errors as error:
            self._health.failed(error)
            raise ClusterUnavailable(
                name,
                f"was running in process {holder} when Redis at {self.where} "
                "became unreachable; that run may still finish there",
            ) from None
        self._health.ok()
        return _decode(name, holder, text)

    async def _outcome_of(self, client: Any, name: str, holder: str) -> str:
        """Wait for the outcome of run `holder`, woken by its announcement and
        checking every `wait_check_s` that its lease is still held."""
        lease = self._key(name, "lease")
        result = self._key(name, "result", holder)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self._key(name, "done"))
            await _subscribed(pubsub)
            while True:
                text = await client.get(result)
                if text is not None:
                    return str(text)
                if await client.get(lease) != holder:
                    text = await client.get(result)
                    if text is not None:
                        return str(text)
                    return json.dumps(
                        {
                            "ok": False,
                            "message": "the process stopped before the run "
                            "finished (its lease ran out)",
                        }
                    )
                await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.wait_check_s
                )
        finally:
            await pubsub.aclose()

    def _key(self, name: str, *parts: str) -> str:
        return ":".join([self.prefix, "task", f"{{{name}}}", *parts])

    async def _attempt(self, action: Callable[[Any], Awaitable[T]]) -> T:
        """One Redis round trip; an outage is recorded and raised as _Unreachable."""
        try:
            async with self._client() as client:
                result = await action(client)
        except self._errors as error:
            self._health.failed(error)
            raise _Unreachable from error
        self._health.ok()
        return result

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        """The client of the first event loop, kept open; a client on any
        other loop (a `run_sync` call, say) lives for one call only, since
        its connections cannot outlive that loop."""
        loop = asyncio.get_running_loop()
        with self._home_lock:
            if self._home is None or self._home[0].is_closed():
                self._home = (loop, self._connect())
            home_loop, client = self._home

        if home_loop is loop:
            yield client
            return

        client = self._connect()
        try:
            yield client
        finally:
            await client.aclose()

    def _connect(self) -> Any:
        return self._redis.asyncio.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )


class _Unreachable(Exception):
    """Redis did not answer; the outage is already logged."""


class _Health:
    """Logs an outage once when it starts and once when it ends."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._down_since: float | None = None
        self._skipped = 0
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._skipped = 0
        logger.error(
            "Redis at %s is unreachable (%s): scheduled ticks are skipped and "
            "task runs refused until it is reachable again",
            self.where,
            _describe(error),
        )

    def skipped(self) -> None:
        with self._lock:
            self._skipped += 1

    def ok(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            lasted = time.monotonic() - self._down_since
            skipped, self._down_since = self._skipped, None
        logger.warning(
            "Redis at %s is reachable again after %.1f s; ticks skipped: %d",
            self.where,
            lasted,
            skipped,
        )


def _import_redis(where: str) -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError:
        raise LockUrlError(
            f"a lock URL is set ('{where}', from {LOCK_URL_VARIABLE} or "
            "scheduler.lock_url) but the 'redis' package is not installed; "
            "install 'nitro-build[redis]', or set scheduler.lock_url in the "
            "config before building so the build vendors it"
        ) from None
    return redis


async def _subscribed(pubsub: Any) -> None:
    """Wait for the server to confirm a subscription, so no announcement
    published after this returns can be missed."""
    deadline = time.monotonic() + REDIS_TIMEOUT_S
    while time.monotonic() < deadline:
        message = await pubsub.get_message(timeout=REDIS_TIMEOUT_S)
        if message is not None and message.get("type") == "subscribe":
            return
    raise TimeoutError("Redis did not confirm the subscription")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


def _success(name: str, result: Any) -> str:
    try:
        return json.dumps({"ok": True, "result": result})
    except (TypeError, ValueError) as error:
        logger.warning(
            "the result of task %s is not JSON-serialisable (%s); callers "
            "waiting in other processes get an error instead",
            name,
            error,
        )
        return json.dumps(
            {
                "ok": False,
                "type": "TypeError",
                "message": f"its result is not JSON-serialisable ({error}); "
                "return plain data (dict, list, str, int, float, bool or None) "
                "to share it across processes",
            }
        )


def _failure(error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return json.dumps({"ok": False, "message": "the run was cancelled"})
    status = getattr(error, "status", 500)
    return json.dumps(
        {
            "ok": False,
            "type": type(error).__qualname__,
            "message": str(error),
            "status": status if isinstance(status, int) else 500,
        }
    )


def _decode(name: str, holder: str, text: str) -> Any:
    outcome = json.loads(text)
    if outcome.get("ok"):
        return outcome.get("result")
    raise RemoteTaskFailed(
        name,
        holder,
        outcome.get("message", ""),
        outcome.get("type"),
        outcome.get("status", 500),
    )


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
