"""Serve the task runtime over HTTP on uvicorn, with the scheduler running.

`serve` is what a built server output runs: it binds the port, builds the ASGI
app of `http.py` around the runtime and a `Scheduler`, and blocks until
SIGTERM or SIGINT. Shutdown is graceful: uvicorn stops accepting requests, and
the app's lifespan stops the scheduler, which waits for running tasks up to
the grace period. The dev server reuses `bind_socket` and `run_server`.
"""

from __future__ import annotations

import errno
import importlib
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import use_runtime
from .http import ASGIApp, create_app
from .runner import TaskRuntime

if TYPE_CHECKING:
    from .scheduler import TickLock

logger = logging.getLogger(__name__)


class ServerError(Exception):
    """The server cannot start: a port, an app, an address."""


class PortInUse(ServerError):
    """Another process already listens on the port."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(f"port {port} on {host} is already in use")


def serve(
    runtime: TaskRuntime,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    timezone: str = "UTC",
    dev: bool = False,
    token: str | None = None,
    app: ASGIApp | str | None = None,
    log_level: str = "info",
    grace: float = 10.0,
    tick_lock: TickLock | None = None,
) -> None:
    """Serve the task routes, the optional app and the scheduler until stopped.

    `app` is an ASGI app or its "module:attr" import path, imported from the
    runtime's root. `token` enables the task routes of a production server.
    `tick_lock` decides which of several server processes runs each tick.
    """
    from .scheduler import Scheduler

    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        )

    user_app = load_app(app, runtime.root) if isinstance(app, str) else app
    scheduler = Scheduler(runtime, timezone, tick_lock=tick_lock)
    asgi = create_app(
        runtime,
        timezone=timezone,
        dev=dev,
        token=token,
        app=user_app,
        scheduler=scheduler,
        grace=grace,
    )
    use_runtime(runtime)

    sock = bind_socket(host, port)
    run_server(asgi, sock, log_level=log_level, grace=grace)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; a taken port raises `PortInUse`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise ServerError(f"cannot listen on {host}:{port}: {error}") from None
    sock.listen(2048)
    return sock


def run_server(
    app: ASGIApp,
    sock: socket.socket,
    *,
    log_level: str = "info",
    grace: float = 10.0,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Serve an ASGI app on uvicorn until SIGTERM or SIGINT.

    `on_started` runs once the app's startup completed and the socket accepts
    requests. Open requests get `grace` seconds to finish on shutdown.
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if on_started is not None and not self.should_exit:
                on_started()

    config = uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        timeout_graceful_shutdown=int(grace),
    )
    Server(config).run(sockets=[sock])


def load_app(target: str, root: Path | str) -> ASGIApp:
    """Import the user's ASGI app from "module:attr", with `root` importable."""
    module_name, _, attr = target.partition(":")
    folder = str(Path(root).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)

    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ServerError(
            f"app '{target}': cannot import module '{module_name}' from "
            f"{folder}: {type(error).__name__}: {error}"
        ) from error
    value: Any = getattr(module, attr or "app", None)
    if not callable(value):
        raise ServerError(
            f"app '{target}': module '{module_name}' has no ASGI app named "
            f"'{attr or 'app'}'; point the config's app at 'module:attr'"
        )
    return value  # type: ignore[no-any-return]
