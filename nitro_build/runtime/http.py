"""The HTTP API of the task runtime: a plain ASGI app, standard library only.

`create_app` answers `GET /_nitro/tasks` (the listing) and `GET`/`POST
/_nitro/tasks/{name}` (run a task), and hands every other request to the
user's own ASGI app when one is configured. Its lifespan starts and stops the
scheduler and forwards startup and shutdown to the user's app. The dev server
and the built server output both serve this app on uvicorn.

Who may call the task routes: on the dev server, loopback clients only; on a
production server, nobody unless a token is set, and then only requests that
carry it as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import traceback
from typing import Any, Protocol
from urllib.parse import parse_qsl

from .asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    error_body,
    send_encoded,
    send_json,
)
from .errors import TaskError
from .runner import TaskRuntime

logger = logging.getLogger(__name__)

PREFIX = "/_nitro/tasks"
MAX_BODY = 1024 * 1024
TOKEN_VARIABLE = "NITRO_TASKS_TOKEN"


class Service(Protocol):
    """What the app starts with the server and stops with it: the scheduler."""

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


class HTTPProblem(Exception):
    """A request the task routes refuse before any task runs."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class TasksApp:
    """The ASGI app: task routes, the user's app behind them, and the lifespan.

    `runtime` and `timezone` are plain attributes, so the dev server can swap
    in a freshly loaded project while requests keep being served. `token`
    enables the task routes on a production server (`dev=False`); `grace` is
    how long shutdown waits for scheduled runs still going.
    """

    def __init__(
        self,
        runtime: TaskRuntime,
        *,
        timezone: str = "UTC",
        dev: bool = False,
        token: str | None = None,
        app: ASGIApp | None = None,
        scheduler: Service | None = None,
        grace: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.timezone = timezone
        self.dev = dev
        self.token = token or None
        self.app = app
        self.scheduler = scheduler
        self.grace = grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind == "http" and _is_task_path(scope["path"]):
            await self._tasks(scope, receive, send)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif kind == "http":
            message = f"no route for {scope['method']} {scope['path']}"
            await send_json(send, 404, error_body(404, message))
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _tasks(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(PREFIX) :].strip("/")
        try:
            self._authorize(scope)
            if not name:
                _allow(scope, ("GET",))
                body = await self._listing()
            else:
                _allow(scope, ("GET", "POST"))
                payload = await _payload(scope, receive)
                body = await self._run(name, payload)
        except HTTPProblem as problem:
            await send_json(
                send,
                problem.status,
                error_body(problem.status, problem.message),
                problem.headers,
            )
            return
        except Exception as error:
            await self._send_failure(send, name, error)
            return

        await send_encoded(send, 200, body)

    def _authorize(self, scope: Scope) -> None:
        """Refuse callers the task routes do not answer."""
        if self.dev:
            if not _is_loopback(scope.get("client")):
                raise HTTPProblem(
                    403,
                    "the dev server answers task routes only to this machine "
                    "(a loopback client)",
                )
            return

        if self.token is None:
            raise HTTPProblem(
                404,
                f"task routes are disabled on this server; set {TOKEN_VARIABLE} "
                "to enable them for requests with 'Authorization: Bearer <token>'",
            )
        given = _bearer(scope)
        if given is None or not hmac.compare_digest(
            given.encode(), self.token.encode()
        ):
            raise HTTPProblem(
                401,
                "task routes need the header 'Authorization: Bearer <token>' "
                f"with the value of {TOKEN_VARIABLE}",
                {"www-authenticate": 'Bearer realm="nitro tasks"'},
            )

    async def _listing(self) -> bytes:
        from .listing import task_listing

        listing = task_listing(self.runtime, self.timezone)
        return json.dumps(listing).encode()

    async def _run(self, name: str, payload: dict[str, Any]) -> bytes:
        result = await self.runtime.run(name, payload, {"source": "http"})
        return json.dumps(result, default=str).encode()

    async def _send_failure(self, send: Send, name: str, error: Exception) -> None:
        if isinstance(error, TaskError):
            status, message = error.status, str(error)
        else:
            status = 500
            what = f"task '{name}'" if name else "the task listing"
            message = f"{what} failed: {type(error).__name__}: {error}"
            if not name:
                logger.error("%s", message, exc_info=error)

        body = error_body(status, message)
        if self.dev:
            body["stack"] = "".join(traceback.format_exception(error))
        await send_json(send, status, body)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = _UserLifespan(self.app, scope) if self.app is not None else None

        await receive()
        try:
            if user is not None:
                await user.startup()
            if self.scheduler is not None:
                await self.scheduler.start()
        except Exception as error:
            logger.error("startup failed: %s", error, exc_info=error)
            await send({"type": "lifespan.startup.failed", "message": str(error)})
            return
        await send({"type": "lifespan.startup.complete"})

        await receive()
        try:
            if self.scheduler is not None:
                await self.scheduler.stop(self.grace)
            if user is not None:
                await user.shutdown()
        except Exception as error:
            logger.error("shutdown failed: %s", error, exc_info=error)
            await send({"type": "lifespan.shutdown.failed", "message": str(error)})
            return
        await send({"type": "lifespan.shutdown.complete"})


# The name the server, the dev server and the tests build the app by.
create_app = TasksApp


class _UserLifespan:
    """Drives the user app's lifespan from ours, if the app takes part.

    An app that fails before completing startup is taken not to support the
    lifespan protocol, as uvicorn itself does; one that reports a failed
    startup stops the server.
    """

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message | None] = asyncio.Queue()
        self.supported = True
        self.started = False
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self.to_app.put({"type": "lifespan.startup"})
        reply = await self.from_app.get()
        if reply is None:
            self.supported = False
            return
        if reply["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the app failed to start: {reply.get('message', '')}")
        self.started = True

    async def shutdown(self) -> None:
        if not self.supported or self.task is None:
            return
        await self.to_app.put({"type": "lifespan.shutdown"})
        reply = await self.from_app.get()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            raise RuntimeError(f"the app failed to stop: {reply.get('message', '')}")
        await self.task

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.to_app.get, self._send)
        except Exception as error:
            if self.started:
                logger.error("the app's lifespan failed: %r", error, exc_info=error)
            else:
                logger.debug("the app does not handle the lifespan: %r", error)
        finally:
            await self.from_app.put(None)

    async def _send(self, message: Message) -> None:
        await self.from_app.put(message)


def _is_task_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _allow(scope: Scope, methods: tuple[str, ...]) -> None:
    if scope["method"] not in methods:
        allowed = ", ".join(methods)
        raise HTTPProblem(
            405,
            f"method {scope['method']} is not allowed on {scope['path']}; "
            f"use {allowed}",
            {"allow": allowed},
        )


def _is_loopback(client: Any) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _header(scope: Scope, wanted: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


async def _payload(scope: Scope, receive: Receive) -> dict[str, Any]:
    """Query parameters, then the JSON body's `payload` object on top."""
    payload: dict[str, Any] = {}
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in payload:
            payload[key] = value
        elif isinstance(payload[key], list):
            payload[key].append(value)
        else:
            payload[key] = [payload[key], value]

    if scope["method"] != "POST":
        return payload
    body = await _read_body(scope, receive)
    if not body.strip():
        return payload

    try:
        data = json.loads(body)
    except ValueError as error:
        raise HTTPProblem(
            400,
            f"the request body is not valid JSON ({error}); send an object "
            'such as {"payload": {"key": "value"}}',
        ) from None
    if not isinstance(data, dict):
        raise HTTPProblem(
            400,
            f"the request body is a JSON {_json_kind(data)}; send an object "
            'such as {"payload": {"key": "value"}}',
        )
    if "payload" not in data:
        return payload
    if not isinstance(data["payload"], dict):
        raise HTTPProblem(
            400,
            f"'payload' in the request body is a JSON "
            f"{_json_kind(data['payload'])}; it must be an object",
        )
    return {**payload, **data["payload"]}


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The request body; refuses one over the limit without reading the rest."""
    too_large = HTTPProblem(
        413, f"the request body is over the limit of {MAX_BODY} bytes (1 MiB)"
    )
    length = _header(scope, b"content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise HTTPProblem(
                400, f"Content-Length '{length}' is not a number"
            ) from None
        if declared > MAX_BODY:
            raise too_large

    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPProblem(400, "the client went away before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
