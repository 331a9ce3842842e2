"""The build model: everything an emitter needs, as plain data.

The pipeline turns a checked project and a preset into one `BuildPlan`; every
emitter reads the same plan and says what its platform needs from it. The
`manifest` part is what the output carries at run time, as JSON, so the
built runtime knows every task without importing any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..project import Project
from .presets import Preset


@dataclass(frozen=True)
class ManifestTask:
    """A task as the output knows it: paths relative to the sources folder."""

    name: str
    file: str | None
    handler: str | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "handler": self.handler,
            "description": self.description,
        }


@dataclass(frozen=True)
class Schedule:
    """One pattern and its tasks; `cron` is the pattern in the preset's dialect."""

    pattern: str
    cron: str
    tasks: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"cron": self.cron, "pattern": self.pattern, "tasks": list(self.tasks)}


@dataclass(frozen=True)
class BuildPlan:
    """A validated project, its preset and the output it is built into."""

    project: Project
    preset: Preset
    output: Path
    tasks: tuple[ManifestTask, ...]
    schedules: tuple[Schedule, ...]
    options: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    built_at: datetime = field(default_factory=datetime.now)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.project.config

    def manifest(self) -> dict[str, Any]:
        """What the built runtime reads at start-up."""
        bundle = self.preset.bundle
        return {
            "preset": self.preset.name,
            "sources": bundle.sources,
            "timezone": self.config.timezone,
            "app": self.config.app,
            "scheduler": dict(self.config.scheduler),
            "tasks": [task.as_dict() for task in self.tasks],
            "schedules": {s.cron: list(s.tasks) for s in self.schedules},
            "patterns": {s.cron: s.pattern for s in self.schedules},
        }
