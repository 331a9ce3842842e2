"""The worker side of the `cloudflare_module` preset.

The generated entry module defines `class Default(WorkerEntrypoint)` and hands
each call to a `CloudflareWorker` built from the manifest the build embedded
in it. Cloudflare names the trigger that fired by its text as written in
`wrangler.toml`, which is the pattern translated into Cloudflare's dialect;
`triggers` maps that text back to the project's own patterns and their tasks.

This module runs inside Pyodide. It imports nothing outside the standard
library at load time (never croniter: nothing here needs to compute a
schedule), and Cloudflare's own modules (`workers`, `asgi`) only inside the
calls that need them, so the module also loads under CPython for tests.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import use_runtime
from .errors import TaskError
from .runner import TaskEntry, TaskOutcome, TaskRuntime

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class ScheduledTasksFailed(TaskError):
    """Some tasks of a cron trigger failed; the others still ran to the end."""

    def __init__(self, cron: str, outcomes: Sequence[TaskOutcome]) -> None:
        self.cron = cron
        self.outcomes = list(outcomes)
        failed = [outcome for outcome in self.outcomes if not outcome.ok]
        details = "; ".join(f"{o.name}: {o.error}" for o in failed)
        super().__init__(
            f"cron trigger '{cron}': {len(failed)} of {len(self.outcomes)} "
            f"tasks failed ({details})"
        )


class CloudflareWorker:
    """The tasks, triggers and app of one build, served to Cloudflare's calls."""

    def __init__(
        self,
        tasks: Sequence[Mapping[str, Any]],
        triggers: Mapping[str, Mapping[str, Sequence[str]]],
        root: Path | str = ".",
        app: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.triggers = {
            cron: {pattern: list(names) for pattern, names in schedules.items()}
            for cron, schedules in triggers.items()
        }
        self.app = app
        self._app: Any = None

        entries = [TaskEntry.from_manifest(task) for task in tasks]
        schedules: dict[str, list[str]] = {}
        for by_pattern in self.triggers.values():
            schedules.update(by_pattern)
        self.runtime = TaskRuntime(entries, root=self.root, schedules=schedules)

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], entry_file: str | Path | None
    ) -> CloudflareWorker:
        """The worker of a build, from the manifest the build embedded.

        The manifest's `schedules` maps each trigger's text to its tasks and
        `patterns` maps it to the project's own pattern. Paths in it are
        relative to the entry module's folder.

        Without the entry module's file name, the working directory stands in:
        that is where Cloudflare's runtime places the uploaded modules.
        """
        folder = Path(entry_file).resolve().parent if entry_file else Path.cwd()
        patterns = manifest.get("patterns", {})
        triggers = {
            cron: {patterns.get(cron, cron): names}
            for cron, names in manifest.get("schedules", {}).items()
        }
        return cls(
            tasks=manifest.get("tasks", []),
            triggers=triggers,
            root=folder / str(manifest.get("sources") or "."),
            app=manifest.get("app"),
        )

    def install(self) -> CloudflareWorker:
        """Make this worker's runtime the one `run_task` calls in this isolate."""
        use_runtime(self.runtime)
        return self

    async def scheduled(
        self, controller: Any, env: Any = None, ctx: Any = None
    ) -> list[TaskOutcome]:
        """Run every task of the trigger that fired; failures are isolated.

        Each failure is logged with its task name as it happens. When any task
        failed, `ScheduledTasksFailed` is raised once all have finished, so
        Cloudflare records the invocation as failed as well.
        """
        cron = str(controller.cron)
        by_pattern = self.triggers.get(cron)
        if by_pattern is None:
            known = ", ".join(f"'{text}'" for text in sorted(self.triggers))
            logger.warning(
                "cron trigger '%s' is not one this worker was built with "
                "(known: %s); nothing runs. Rebuild and deploy so wrangler.toml "
                "and the worker agree.",
                cron,
                known or "none",
            )
            return []

        scheduled_time = int(controller.scheduledTime)
        context = {"cloudflare": {"env": env, "ctx": ctx}}
        logger.info(
            "cron trigger '%s' fired for %s", cron, ", ".join(sorted(by_pattern))
        )
        runs = [
            self.runtime.run_cron(pattern, scheduled_time, context)
            for pattern in by_pattern
        ]
        outcomes = [
            outcome for batch in await asyncio.gather(*runs) for outcome in batch
        ]

        if any(not outcome.ok for outcome in outcomes):
            raise ScheduledTasksFailed(cron, outcomes)
        return outcomes

    async def fetch(self, request: Any, env: Any = None) -> Any:
        """Serve the configured ASGI app through Cloudflare's bridge, else 404."""
        app = self.load_app()
        if app is None:
            return _not_found()

        import asgi  # type: ignore[import-not-found]  # Cloudflare's ASGI bridge

        return await asgi.fetch(app, request, env)

    def load_app(self) -> Any:
        """The app named "module:attr" in the config, imported on first use."""
        if self.app is None or self._app is not None:
            return self._app

        module_name, _, attr = self.app.partition(":")
        root = str(self.root.resolve())
        if root not in sys.path:
            sys.path.insert(0, root)
        module = importlib.import_module(module_name)
        app = getattr(module, attr or "app", None)
        if app is None:
            raise TaskError(
                f"app '{self.app}': module '{module_name}' has no attribute "
                f"'{attr or 'app'}'; set 'app' in the config to \"module:attribute\""
            )
        self._app = app
        return app


def configure_logging(level: int = logging.INFO) -> None:
    """Send log records to standard error, which Cloudflare keeps as worker logs.

    Left alone when the root logger already has a handler, so a user's own
    logging set-up wins.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def _not_found() -> Any:
    from workers import Response  # type: ignore[import-not-found]

    body = {
        "error": True,
        "status": 404,
        "message": "this worker serves no app; set 'app' in the config to serve one",
    }
    return Response(
        json.dumps(body), status=404, headers={"content-type": "application/json"}
    )
