"""The build: turn a project into a deployable output for a preset.

`build_project(root, preset=None, output=None)` runs the whole pipeline and
returns a `BuildResult` whose `summary()` the command prints. Presets are
data (see `presets`); each names an emitter under `emitters`.
"""

from __future__ import annotations

from .pipeline import BuildResult, build_project

__all__ = ["BuildResult", "build_project"]
