"""The emitter of the server presets (node-server, bun, deno-server).

On top of the bundle and the rendered `index.py`, it writes the task manifest
next to `index.py` (read at start-up instead of importing any task) and
`nitro.json` at the output's top: preset, build date, versions, the preview
command, tasks and schedules.
"""

from __future__ import annotations

from typing import Any

from .. import vendor
from . import base

MANIFEST = "manifest.json"


class Emitter(base.Emitter):
    """Writes a long-running Python server with its own scheduler."""

    def emit(self) -> None:
        folder = self.preset.bundle.folder
        self.write_json(f"{folder}/{MANIFEST}", self.manifest())
        super().emit()
        self.write_json("nitro.json", self.build_info())

    def dependencies(self) -> list[str]:
        # Servers sharing ticks and runs through Redis need its client.
        lock = ["redis"] if self.plan.config.scheduler.get("lock_url") else []
        return super().dependencies() + lock

    def build_info(self) -> dict[str, Any]:
        """`nitro.json`: what was built, when, with what, and how to run it."""
        plan = self.plan
        return {
            "date": plan.built_at.isoformat(timespec="seconds"),
            "preset": self.preset.name,
            "framework": {
                "name": "nitro-build",
                "version": plan.versions["nitro-build"],
            },
            "versions": {**plan.versions, **self.vendored_versions()},
            "commands": {"preview": self.preset.preview.get("command", "")},
            "tasks": {
                task.name: {"description": task.description} for task in plan.tasks
            },
            "scheduledTasks": [
                {"cron": schedule.cron, "tasks": list(schedule.tasks)}
                for schedule in plan.schedules
            ],
            "timezone": plan.config.timezone,
            "requirements": list(dict.fromkeys(self.report.listed)),
        }

    def vendored_versions(self) -> dict[str, str]:
        """Versions of the runtime's own packages, as vendored."""
        found = self.report.versions
        return {
            name: found[vendor.normalize(name)]
            for name in self.dependencies()
            if vendor.normalize(name) in found
        }
