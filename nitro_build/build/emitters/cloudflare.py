"""The `cloudflare_module` emitter: a Python Worker with cron triggers.

The preset's data lays out the bundle (`src/` holds the entry module, the
task runtime and the user's sources; `python_modules/` next to the config
holds the vendored pure-Python packages) and renders the entry module. This
emitter adds what data cannot say: `wrangler.toml`, whose worker name,
compatibility date and extra keys come from the config's `[cloudflare]`
table, and whose cron triggers are the schedules in Cloudflare's dialect.
"""

from __future__ import annotations

import re
from typing import Any

from ...config import CONFIG_FILES, PYPROJECT
from ...errors import Problem
from .base import Emitter as BaseEmitter
from .base import options_where, python_literal, reserved_options

# The worker's own keys; every other key of the [cloudflare] table (vars,
# bindings, routes...) passes through to wrangler.toml as written.
OWN_KEYS = ("name", "main", "compatibility_date", "compatibility_flags", "triggers")
RESERVED = {
    "main": "the build points it at the entry module it writes",
    "triggers": "cron triggers come from scheduled_tasks",
}
NAME_LIMIT = 63
VALID_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


class Emitter(BaseEmitter):
    """Writes `wrangler.toml` beside the bundle and the rendered entry module."""

    @classmethod
    def check(cls, plan: Any) -> list[Problem]:
        options = plan.options
        where = options_where(plan)
        problems = reserved_options(plan, RESERVED)

        name = options.get("name")
        if name is not None and not _is_valid_name(str(name)):
            problems.append(
                Problem(
                    f"{where}.name",
                    f"'{name}' is not a valid worker name; use up to {NAME_LIMIT} "
                    "lowercase letters, digits and dashes, not starting or ending "
                    f"with a dash, such as '{worker_name(str(name))}'",
                )
            )

        flags = options.get("compatibility_flags", [])
        if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            problems.append(
                Problem(
                    f"{where}.compatibility_flags",
                    f"{flags!r} is not a list of strings; write it as "
                    '["flag_one", "flag_two"]',
                )
            )
        return problems

    def context(self) -> dict[str, Any]:
        return {
            **super().context(),
            "manifest": python_literal(self.manifest()),
        }

    def emit(self) -> None:
        super().emit()
        self.write_toml("wrangler.toml", self.wrangler_config())
        self.warn_unshipped_sources()

        if self.report.listed:
            self.report.warnings.append(
                "Cloudflare loads no packages from requirements.txt: "
                + ", ".join(dict.fromkeys(self.report.listed))
                + " could not be vendored into python_modules/ (not pure Python "
                "or not installed here); the worker fails where it imports them"
            )

    def warn_unshipped_sources(self) -> None:
        """Say which source files the worker will not see.

        wrangler uploads the Python modules under the entry's folder, so data
        files among the sources stay behind.
        """
        # TODO: ship the sources' non-Python files too (waits on checking, on a
        # real deploy, how Pyodide exposes files uploaded through wrangler rules)
        sources = self.path(self.preset.bundle.folder) / self.preset.bundle.sources
        left = sorted(
            path.relative_to(sources).as_posix()
            for path in sources.rglob("*")
            if path.is_file() and not _needless_in_worker(path.name)
        )
        if left:
            shown = ", ".join(f"'{name}'" for name in left[:3])
            more = f" and {len(left) - 3} more" if len(left) > 3 else ""
            files = "file" if len(left) == 1 else "files"
            self.report.warnings.append(
                f"wrangler uploads only Python modules, so {len(left)} source "
                f"{files} will not reach the worker: {shown}{more}; keep such "
                "data in a .py module, KV or R2"
            )

    def wrangler_config(self) -> dict[str, Any]:
        """The worker's configuration, in wrangler's own keys."""
        options = self.plan.options
        flags = ["python_workers"]
        flags += [f for f in options.get("compatibility_flags", []) if f not in flags]

        config: dict[str, Any] = {
            "name": str(options.get("name") or worker_name(self.plan.config.root.name)),
            "main": self.main(),
            "compatibility_date": str(
                options.get("compatibility_date") or self.compatibility_date()
            ),
            "compatibility_flags": flags,
        }
        config.update({k: v for k, v in options.items() if k not in OWN_KEYS})
        config["triggers"] = {"crons": [s.cron for s in self.plan.schedules]}
        return config

    def main(self) -> str:
        """The entry module's path in the output (the preset's `extra.main`)."""
        return str(self.preset.extra["main"])

    def compatibility_date(self) -> str:
        """The date this preset was last run against Cloudflare's runtime."""
        return str(self.preset.extra["compatibility_date"])


def worker_name(text: str) -> str:
    """A valid worker name made from any text, such as a folder's name."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    name = name[:NAME_LIMIT].rstrip("-")
    return name or "nitro-worker"


def _is_valid_name(name: str) -> bool:
    return len(name) <= NAME_LIMIT and VALID_NAME.match(name) is not None


def _needless_in_worker(name: str) -> bool:
    """Python modules ship; project files and docs are not read at run time."""
    return (
        name.endswith((".py", ".md", ".rst"))
        or name in (*CONFIG_FILES, PYPROJECT)
        or name.upper().startswith(("README", "LICENSE", "CHANGELOG"))
    )
