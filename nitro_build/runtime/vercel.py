"""The function side of the vercel preset.

The build writes one Python function under `api/` whose `app` comes from
`create_app` here. Vercel calls every cron job at a path of its own with GET;
this app maps the path back to its pattern, checks the Bearer token against
`CRON_SECRET`, and runs that pattern's tasks with the pattern's most recent
scheduled instant as `scheduledTime`. Every other request goes to the user's
ASGI app when one is configured, and gets 404 otherwise.

Vercel does not retry a failed cron call and may deliver one twice; the task
runtime's one-running-instance rule joins a second delivery that arrives while
the first still runs in the same instance. With a lock URL (`NITRO_LOCK_URL`,
or `scheduler.lock_url` in the manifest) every instance shares one Redis, as
the server's processes do (see `cluster`): a call first takes the tick's lock,
and a delivery whose tick already ran elsewhere answers 200 with `skipped` and
runs nothing; while Redis is unreachable the tick is skipped too, but answered
503 so the platform's logs show it. Task runs go through the same Redis, so
one running instance per task holds across instances.
"""

from __future__ import annotations

import hmac
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import use_runtime
from .asgi import ASGIApp, Receive, Scope, Send, error_body, send_json
from .cluster import RedisCluster, cluster_from_settings
from .cron import parse_pattern
from .runner import TaskEntry, TaskRuntime

logger = logging.getLogger(__name__)

SECRET_VARIABLE = "CRON_SECRET"

MISSING_SECRET = (
    "CRON_SECRET is not set, so no cron call can be trusted and no task ran; "
    "set it in the project's environment variables (for example "
    "'vercel env add CRON_SECRET production' with a random string of at least "
    "16 characters) and redeploy"
)

ALREADY_RAN = "this tick was already delivered and ran elsewhere"


class VercelApp:
    """The ASGI app of the generated function: cron paths, then the user's app."""

    def __init__(
        self,
        runtime: TaskRuntime,
        crons: Mapping[str, str],
        app: ASGIApp | None = None,
        clock: Callable[[], datetime] | None = None,
        cluster: RedisCluster | None = None,
    ) -> None:
        self.runtime = runtime
        self.crons = dict(crons)
        self.app = app
        self.clock = clock or (lambda: datetime.now(UTC))
        self.cluster = cluster

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return

        path = str(scope.get("path") or "/")
        pattern = self.crons.get(path) if kind == "http" else None
        if pattern is not None:
            await self._cron(scope, send, path, pattern)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif kind == "http":
            message = f"no route for '{path}'; this function only serves cron paths"
            await send_json(send, 404, error_body(404, message))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
            return

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _cron(self, scope: Scope, send: Send, path: str, pattern: str) -> None:
        method = str(scope.get("method", "GET")).upper()
        if method != "GET":
            message = f"method '{method}' is not allowed on a cron path; use GET"
            await send_json(send, 405, error_body(405, message), {"allow": "GET"})
            return

        secret = os.environ.get(SECRET_VARIABLE, "")
        if not secret:
            logger.error("cron call to %s refused: %s", path, MISSING_SECRET)
            await send_json(send, 500, error_body(500, MISSING_SECRET))
            return

        if not _bearer_matches(scope, secret):
            logger.warning("cron call to %s refused: wrong or missing token", path)
            message = "missing or wrong 'Authorization: Bearer' token"
            await send_json(
                send, 401, error_body(401, message), {"www-authenticate": "Bearer"}
            )
            return

        scheduled = self.scheduled_instant(pattern)
        scheduled_ms = int(scheduled.timestamp() * 1000)
        if not await self._claim(send, pattern, scheduled_ms):
            return

        context = {"vercel": {"path": path, "scheduledAt": scheduled.isoformat()}}
        outcomes = await self.runtime.run_cron(pattern, scheduled_ms, context)

        failed = [outcome.name for outcome in outcomes if not outcome.ok]
        body = {
            "ok": not failed,
            "cron": pattern,
            "scheduledTime": scheduled_ms,
            "tasks": {outcome.name: outcome.as_dict() for outcome in outcomes},
        }
        if failed:
            logger.error("cron %s: failed tasks: %s", pattern, ", ".join(failed))
        await send_json(send, 500 if failed else 200, body)

    async def _claim(self, send: Send, pattern: str, scheduled_ms: int) -> bool:
        """Take the tick's lock; when it is not ours, answer and return False."""
        if self.cluster is None:
            return True
        claimed = await self.cluster.claim_tick(pattern, scheduled_ms)
        if claimed:
            return True

        if claimed is None:
            where = self.cluster.where
            logger.warning(
                "cron %s at %d skipped, no task ran: Redis at %s is unreachable",
                pattern,
                scheduled_ms,
                where,
            )
            message = (
                f"cron '{pattern}' at {scheduled_ms} was skipped and no task ran: "
                f"Redis at {where} is unreachable, so the tick cannot be run "
                "exactly once; it is not replayed"
            )
            await send_json(send, 503, error_body(503, message))
            return False

        logger.info("cron %s at %d skipped: %s", pattern, scheduled_ms, ALREADY_RAN)
        body = {
            "ok": True,
            "cron": pattern,
            "scheduledTime": scheduled_ms,
            "skipped": ALREADY_RAN,
            "tasks": {},
        }
        await send_json(send, 200, body)
        return False

    def scheduled_instant(self, pattern: str) -> datetime:
        """The pattern's latest instant at or before now, in UTC.

        Vercel calls a little after the instant, never before it, so the
        latest instant not after now is the tick being delivered.
        """
        now = self.clock()
        try:
            return parse_pattern(pattern).previous_before(now, UTC)
        except Exception:
            logger.exception("cron %s: no previous instant; using now", pattern)
            return now


def create_app(manifest: Mapping[str, Any], bundle: Path | str) -> VercelApp:
    """The function's app, from the manifest the build embedded in it.

    `bundle` is the folder holding `nitro_build`; the manifest's `sources` is
    relative to it. `schedules` maps each pattern as Vercel reads it to its
    tasks, `patterns` maps it back to the project's own pattern, and `crons`
    maps each cron path to the project's pattern. `NITRO_LOCK_URL`, else
    `scheduler.lock_url`, makes instances share ticks and runs through Redis.
    """
    root = (Path(bundle) / str(manifest.get("sources") or ".")).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    entries = [TaskEntry.from_manifest(task) for task in manifest.get("tasks", [])]
    patterns = manifest.get("patterns", {})
    schedules = {
        patterns.get(cron, cron): list(names)
        for cron, names in manifest.get("schedules", {}).items()
    }
    cluster = cluster_from_settings(manifest.get("scheduler", {}).get("lock_url"))
    runtime = TaskRuntime(entries, root, schedules, coordinator=cluster)
    use_runtime(runtime)

    app = manifest.get("app")
    user_app = load_app(str(app)) if app else None
    return VercelApp(runtime, manifest.get("crons", {}), user_app, cluster=cluster)


def load_app(spec: str) -> ASGIApp:
    """Import the user's ASGI app from "module:attr"."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr or "app", None)
    if not callable(value):
        raise RuntimeError(
            f"app '{spec}': module '{module_name}' has no ASGI app named "
            f"'{attr or 'app'}'; set 'app' in the config to \"module:attribute\""
        )
    return value  # type: ignore[no-any-return]


def _bearer_matches(scope: Scope, secret: str) -> bool:
    expected = b"Bearer " + secret.encode()
    given = b""
    for name, value in scope.get("headers") or []:
        if bytes(name).lower() == b"authorization":
            given = bytes(value)
            break
    return hmac.compare_digest(given, expected)
