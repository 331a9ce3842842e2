"""The dev server behind `nitro dev`: the project's tasks on this machine.

It serves the HTTP API of the task runtime in dev mode (loopback clients only,
tracebacks in error bodies) with the scheduler running, and writes
`.nitro/dev.json` (pid, host, port, url) once it listens, so `nitro task list`
and `nitro task run` find it; the file goes away when the server stops.

Reloading happens in this process, so the port stays open and requests keep
being answered. Every half second a watcher compares the modification times
of the config files and the project's `.py` files, the task folder's and the
helpers beside it (os.scandir, no extra dependency; virtual environments,
hidden folders and the output are passed over). On a change it forgets the
project's imported modules, loads the project afresh, imports every task, and
swaps the new runtime and a new scheduler in. A task file that fails
to import is logged with its file and line and answers 500 with that error
while the other tasks keep serving; a config that fails to load is logged and
the previous tasks keep serving until it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .client import DEV_FILE
from .config import CONFIG_FILES, PYPROJECT, Config
from .errors import ConfigError, NitroError
from .project import Project, check_tasks, load_project
from .runtime import TaskRuntime, use_runtime
from .runtime.http import ASGIApp, TasksApp, create_app
from .runtime.scheduler import Scheduler
from .runtime.server import PortInUse, ServerError, bind_socket, load_app, run_server
from .state import state_folder

logger = logging.getLogger(__name__)

IGNORED_FOLDERS = {"__pycache__", "node_modules"}
POLL_INTERVAL = 0.5
SETTLE_INTERVAL = 0.1
GRACE = 10.0

Stamps = dict[str, tuple[int, int]]


def serve(root: Path, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve the project at `root` until SIGINT or SIGTERM."""
    root = Path(root).resolve()
    # Task files are edited and re-imported many times a second apart; cached
    # bytecode keyed on whole-second mtimes could bring back an older version.
    sys.dont_write_bytecode = True

    project = load_project(root)
    runtime = load_runtime(project)
    before = set(sys.modules)
    user_app = _user_app(project)
    reloader = Reloader(
        project, runtime, user_app, frozenset(set(sys.modules) - before)
    )
    use_runtime(runtime)

    try:
        sock = bind_socket(host, port)
    except PortInUse:
        raise NitroError(
            f"port {port} on {host} is already in use; stop the process using it "
            f"or pick another port with 'nitro dev --port {port + 1}'"
        ) from None
    except ServerError as error:
        raise NitroError(str(error)) from None
    info = root / DEV_FILE
    url = _url(host, sock.getsockname()[1])

    def started() -> None:
        write_dev_file(info, host, sock.getsockname()[1], url)
        logger.info("dev server for %s listening on %s", root, url)

    with _sigterm_exits():
        try:
            run_server(reloader.app, sock, grace=GRACE, on_started=started)
        except KeyboardInterrupt:
            # uvicorn already shut down gracefully; Ctrl+C is a normal stop.
            pass
        finally:
            remove_dev_file(info)
            sock.close()


def load_runtime(project: Project) -> TaskRuntime:
    """A runtime with every task imported; problems are logged, not raised."""
    runtime = project.runtime()
    problems = check_tasks(project, runtime)
    for problem in problems:
        logger.error("%s", problem)
    if problems:
        logger.error(
            "%d task problem(s); a task that failed to load answers 500 with "
            "its error until the file is fixed, the others keep serving",
            len(problems),
        )
    return runtime


class Reloader:
    """Runs the scheduler and reloads the project when its files change.

    The app's lifespan starts and stops it in place of a bare scheduler.
    """

    def __init__(
        self,
        project: Project,
        runtime: TaskRuntime,
        user_app: ASGIApp | None,
        app_modules: frozenset[str] = frozenset(),
    ) -> None:
        self.project = project
        self.app: TasksApp = create_app(
            runtime,
            timezone=project.config.timezone,
            dev=True,
            app=user_app,
            scheduler=self,
            grace=GRACE,
        )
        self.scheduler: Scheduler | None = None
        self.stamps: Stamps = {}
        # The served app is not reloaded, so the modules it brought stay.
        self.app_modules = app_modules
        self.watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.stamps = await asyncio.to_thread(snapshot, self.project)
        self.scheduler = Scheduler(self.app.runtime, self.project.config.timezone)
        await self.scheduler.start()
        self.watcher = asyncio.create_task(self._watch(), name="nitro dev watcher")

    async def stop(self, grace: float) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.wait([self.watcher])
        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.stop(grace)

    async def reload(self, changed: list[str]) -> None:
        """Load the project afresh and swap it in; on failure keep the old one."""
        shown = ", ".join(_relative(path, self.project.root) for path in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        logger.info("changed: %s%s; reloading", shown, more)

        try:
            project, runtime = await asyncio.to_thread(self._load)
        except ConfigError as error:
            for problem in error.problems:
                logger.error("%s", problem)
            logger.error("not reloaded; the previous tasks serve until this is fixed")
            return

        # TODO: reload the user's app too (its lifespan would need restarting
        # in place; until then the modules it brought stay as first imported)
        if project.config.app != self.project.config.app:
            logger.warning(
                "the config's app changed to '%s'; restart 'nitro dev' to serve it",
                project.config.app,
            )
        self.project = project
        self.app.runtime = runtime
        self.app.timezone = project.config.timezone
        use_runtime(runtime)

        scheduler, self.scheduler = self.scheduler, None
        if scheduler is not None:
            await scheduler.stop(GRACE)
        self.scheduler = Scheduler(runtime, project.config.timezone)
        await self.scheduler.start()
        logger.info("reloaded %d tasks", len(runtime.entries))

    def _load(self) -> tuple[Project, TaskRuntime]:
        _forget_modules(self.project.config, self.app_modules)
        project = load_project(self.project.root)
        return project, load_runtime(project)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                stamps = await self._settled(self.stamps)
                if stamps == self.stamps:
                    continue
                changed = sorted(
                    path
                    for path in stamps.keys() | self.stamps.keys()
                    if stamps.get(path) != self.stamps.get(path)
                )
                self.stamps = stamps
                await self.reload(changed)
            except Exception:
                logger.exception("reloading failed; the previous tasks keep serving")

    async def _settled(self, known: Stamps) -> Stamps:
        """The files' stamps once they stop changing, so a save is read whole."""
        stamps = await asyncio.to_thread(snapshot, self.project)
        while stamps != known:
            known = stamps
            await asyncio.sleep(SETTLE_INTERVAL)
            stamps = await asyncio.to_thread(snapshot, self.project)
        return stamps


def snapshot(project: Project) -> Stamps:
    """Modification time and size of every file whose change means a reload."""
    stamps: Stamps = {}
    config = project.config
    for name in (*CONFIG_FILES, PYPROJECT):
        _stamp(config.root / name, stamps)
    _scan(str(config.src_dir), stamps, skipped=_not_sources(config))
    _scan(str(config.tasks_dir), stamps)
    for entry in project.entries.values():
        if entry.file:
            _stamp(Path(entry.file), stamps)
        if entry.handler and entry.handler.partition(":")[0].endswith(".py"):
            _stamp(config.src_dir / entry.handler.partition(":")[0], stamps)
    return stamps


def _stamp(path: Path, stamps: Stamps) -> None:
    try:
        status = path.stat()
    except OSError:
        return
    stamps[str(path)] = (status.st_mtime_ns, status.st_size)


def _scan(folder: str, stamps: Stamps, skipped: frozenset[str] = frozenset()) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in IGNORED_FOLDERS:
            continue
        try:
            if entry.is_dir():
                if entry.path in skipped or _is_venv(entry.path):
                    continue
                _scan(entry.path, stamps, skipped)
            elif entry.name.endswith(".py"):
                status = entry.stat()
                stamps[entry.path] = (status.st_mtime_ns, status.st_size)
        except OSError:
            continue


def _forget_modules(config: Config, keep: frozenset[str]) -> None:
    """Drop imported task files and the project's own modules they use, so
    they import afresh; modules in `keep` (the served app's) stay."""
    for name, module in list(sys.modules.items()):
        # A namespace package has no file, only a path; it must go too, or
        # `from package import module` finds the old module on it.
        places = [getattr(module, "__file__", None) or ""]
        places += list(getattr(module, "__path__", None) or [])
        own = any(_project_code(place, config) for place in places)
        if (name.startswith("nitro_tasks.") or own) and name not in keep:
            del sys.modules[name]


def _project_code(path: str, config: Config) -> bool:
    """Whether a module file is the project's own code, not an installed
    package, even one in a virtual environment inside the project."""
    for folder in (config.tasks_dir, config.src_dir):
        prefix = str(folder) + os.sep
        if path.startswith(prefix):
            break
    else:
        return False
    if path.startswith(tuple(place + os.sep for place in _not_sources(config))):
        return False
    parts = path[len(prefix) :].split(os.sep)
    return not any(
        part.startswith(".") or part in ("site-packages", "dist-packages")
        for part in parts
    )


def _not_sources(config: Config) -> frozenset[str]:
    """Folders under the sources that hold no project code of its own."""
    return frozenset({str(config.output_dir), str(config.root / ".nitro")})


def _is_venv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def write_dev_file(path: Path, host: str, port: int, url: str) -> None:
    """Write dev.json in one step, so a reader never sees half of it."""
    state_folder(path.parent.parent)

    previous = _read_dev_file(path)
    if previous and previous.get("pid") not in (None, os.getpid()):
        logger.warning(
            "%s named another dev server (pid %s, %s); this one replaces it",
            path,
            previous.get("pid"),
            previous.get("url"),
        )

    info = {"pid": os.getpid(), "host": host, "port": port, "url": url}
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(temporary, path)


def remove_dev_file(path: Path) -> None:
    """Remove dev.json if it still names this process."""
    info = _read_dev_file(path)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def _read_dev_file(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _user_app(project: Project) -> ASGIApp | None:
    if project.config.app is None:
        return None
    try:
        return load_app(project.config.app, project.config.src_dir)
    except ServerError as error:
        raise NitroError(str(error)) from None


def _url(host: str, port: int) -> str:
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Make SIGTERM end the process through SystemExit, so cleanup runs.

    uvicorn handles SIGTERM while it serves, shuts down gracefully, and then
    raises the signal again under the handler installed here.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(number: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + number)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
