"""The `vercel` emitter: cron jobs in vercel.json that call one Python function.

The preset's data lays out the bundle under `api/_nitro/` (the task runtime
and the user's sources, where Vercel neither serves them as static files nor
turns them into functions) and renders the function, `api/nitro.py`. This
emitter adds what data cannot say: `vercel.json`, with one cron job per
pattern at a path of its own and the rewrites that send those paths (and,
with an `app`, every other path) to the function; `.python-version`; and
`.vercelignore`. The function learns which path means which pattern from the
manifest embedded in it.

With `scheduler.lock_url` the build lists `redis` in requirements.txt and
the manifest carries the URL, so instances share ticks and runs through
Redis. The manifest is written into `api/nitro.py`, so a URL with a password
stops the build: the config keeps the URL without it and the Vercel project
sets the full one as `NITRO_LOCK_URL`, which wins at run time.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ...errors import Problem
from .base import Emitter as BaseEmitter
from .base import options_where, python_literal, reserved_options

# The keys of the [vercel] table this preset reads itself; every other key
# passes through to vercel.json as written (regions, headers...).
OWN_KEYS = ("plan", "max_duration")
RESERVED = {
    "crons": "cron jobs come from scheduled_tasks",
    "rewrites": "the build writes the rewrites its cron paths and app need",
    "functions": "set the function's time limit with vercel.max_duration",
}
MAX_DURATION = (1, 800)

IGNORED = ("__pycache__/", "*.pyc", ".nitro-output")


class Emitter(BaseEmitter):
    """Writes vercel.json, .python-version and .vercelignore beside the function."""

    @classmethod
    def check(cls, plan: Any) -> list[Problem]:
        options = plan.options
        where = options_where(plan)
        problems = reserved_options(plan, RESERVED)

        duration = options.get("max_duration")
        low, high = MAX_DURATION
        if duration is not None and (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or not low <= duration <= high
        ):
            problems.append(
                Problem(
                    f"{where}.max_duration",
                    f"{duration!r} is not a whole number of seconds from {low} to "
                    f"{high}; set it to the longest a pattern's tasks may run, "
                    "such as 300",
                )
            )
        return problems

    def context(self) -> dict[str, Any]:
        return {
            **super().context(),
            "manifest": python_literal(self.function_manifest()),
            "bundle_dir": posixpath.relpath(
                self.preset.bundle.folder, posixpath.dirname(self.function())
            ),
        }

    def dependencies(self) -> list[str]:
        # Instances sharing ticks and runs through Redis need its client.
        lock = ["redis"] if self.plan.config.scheduler.get("lock_url") else []
        return super().dependencies() + lock

    def emit(self) -> None:
        super().emit()
        self.write_json("vercel.json", self.vercel_config())
        self.write_text(".python-version", f"{self.python_version()}\n")
        self.write_text(".vercelignore", "".join(f"{line}\n" for line in IGNORED))

    def function_manifest(self) -> dict[str, Any]:
        """The manifest plus `crons`: each cron path and the pattern it runs."""
        crons = {path: s.pattern for path, s in self.cron_paths().items()}
        return {**self.manifest(), "crons": crons}

    def cron_paths(self) -> dict[str, Any]:
        """Each schedule under a path of its own, numbered in config order."""
        base = str(self.preset.extra["cron_path"]).rstrip("/")
        return {f"{base}/{index}": s for index, s in enumerate(self.plan.schedules)}

    def vercel_config(self) -> dict[str, Any]:
        """The project's vercel.json: cron jobs, rewrites, the function's limits."""
        options = self.plan.options
        destination = "/" + self.function().removesuffix(".py")
        paths = self.cron_paths()

        config: dict[str, Any] = {k: v for k, v in options.items() if k not in OWN_KEYS}
        config["crons"] = [
            {"path": path, "schedule": schedule.cron}
            for path, schedule in paths.items()
        ]
        rewrites = [{"source": path, "destination": destination} for path in paths]
        if self.plan.config.app:
            rewrites.append({"source": "/(.*)", "destination": destination})
        config["rewrites"] = rewrites

        if options.get("max_duration") is not None:
            limits = {"maxDuration": options["max_duration"]}
            config["functions"] = {self.function(): limits}
        return config

    def function(self) -> str:
        """The function's file in the output (the preset's `extra.function`)."""
        return str(self.preset.extra["function"])

    def python_version(self) -> str:
        return str(self.preset.extra["python_version"])
