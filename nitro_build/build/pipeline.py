"""The build pipeline: from a project folder to a deployable output.

`build_project` reads as its steps: load the project, pick the preset, check
everything (config, every task module, every schedule in the preset's
dialect, the output folder) and stop with every problem at once, lay out the
bundle in a staging folder next to the output, let the preset's emitter write
its files, then swap the staging folder into place. Nothing is written before
the checks pass, and a build that fails at any point leaves the previous
output exactly as it was.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from ..errors import ConfigError, Problem
from ..project import Project, check_tasks, load_project
from ..runtime import TaskError
from ..runtime.loader import TaskCatalog
from ..state import build_lock
from .emitters.base import Emitter
from .model import BuildPlan, ManifestTask, Schedule
from .presets import Preset, load_emitter_class, load_preset

logger = logging.getLogger(__name__)

# Every output carries this file; a folder without it is never replaced.
MARKER = ".nitro-output"


@dataclass(frozen=True)
class Written:
    """A file or folder of the output, with how much it holds."""

    path: str
    files: int
    size: int


@dataclass(frozen=True)
class BuildResult:
    """What a build produced, for the summary the command prints."""

    preset: str
    output: Path
    tasks: int
    schedules: int
    written: list[Written]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"Built preset '{self.preset}' into {self.output} in "
            f"{self.seconds:.2f} s: {_count(self.tasks, 'task')}, "
            f"{_count(self.schedules, 'schedule')}."
        ]
        width = max((len(item.path) for item in self.written), default=0)
        for item in self.written:
            files = f"  ({_count(item.files, 'file')})" if item.files > 1 else ""
            lines.append(f"  {item.path.ljust(width)}  {_size(item.size):>9}{files}")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def build_project(
    root: Path | str, preset: str | None = None, output: Path | str | None = None
) -> BuildResult:
    """Build the project at root for a preset into its output folder."""
    started = time.perf_counter()

    project = load_project(Path(root), preset=preset)
    target = load_preset(project.config.preset)
    emitter_class: type[Emitter] = load_emitter_class(target)
    output_dir = output_folder(project.config, output)

    with build_lock(project.root):
        recover_output(output_dir)
        plan = plan_build(project, target, output_dir, emitter_class)

        with staging_folder(output_dir) as staging:
            emitter = emitter_class(plan, staging)
            emitter.lay_out_bundle()
            emitter.emit()
            write_marker(staging, plan)
            written = written_items(emitter)
            warnings = [
                *plan.warnings,
                *emitter.report.warnings,
                *size_warnings(target, written),
            ]
            replace_output(staging, output_dir)

    return BuildResult(
        preset=target.name,
        output=output_dir,
        tasks=len(plan.tasks),
        schedules=len(plan.schedules),
        written=written,
        seconds=time.perf_counter() - started,
        warnings=warnings,
    )


def output_folder(config: Config, output: Path | str | None) -> Path:
    """The output folder: the command's option (from the current folder),
    else the config's `output_dir`."""
    return Path(output).resolve() if output is not None else config.output_dir


def plan_build(
    project: Project, preset: Preset, output: Path, emitter_class: type[Emitter]
) -> BuildPlan:
    """Check everything and return the plan; raises one ConfigError listing
    every problem found."""
    config = project.config
    options = (
        dict(config.preset_options.get(preset.options, {})) if preset.options else {}
    )
    catalog = project.catalog()

    problems = output_problems(config, output)
    problems += check_tasks(project, catalog)
    tasks, task_problems = manifest_tasks(project, catalog)
    problems += task_problems
    problems += app_problems(config)
    schedules, schedule_problems, warnings = translate_schedules(
        config, preset, options
    )
    problems += schedule_problems

    plan = BuildPlan(
        project=project,
        preset=preset,
        output=output,
        tasks=tuple(tasks),
        schedules=tuple(schedules),
        options=options,
        warnings=tuple(warnings),
        built_at=datetime.now().astimezone(),
        versions={"nitro-build": __version__, "python": platform.python_version()},
    )
    problems += emitter_class.check(plan)
    if problems:
        raise ConfigError(problems)
    return plan


def output_problems(config: Config, output: Path) -> list[Problem]:
    """An output folder the build may not replace: the project, its sources,
    or a folder that holds files the build did not write."""
    where = f"output folder '{output}'"
    fix = "choose another folder with --output or output_dir"
    if config.root == output or config.root.is_relative_to(output):
        return [Problem(where, f"is the project folder or contains it; {fix}")]
    for name, folder in (("src_dir", config.src_dir), ("tasks_dir", config.tasks_dir)):
        if folder.is_relative_to(output):
            return [Problem(where, f"contains the sources ({name} '{folder}'); {fix}")]
    if output.is_relative_to(config.tasks_dir):
        return [
            Problem(where, f"is inside the tasks folder '{config.tasks_dir}'; {fix}")
        ]
    if output.exists() and not output.is_dir():
        return [Problem(where, f"is a file, not a folder; {fix}")]
    if output.is_dir() and not (output / MARKER).is_file() and any(output.iterdir()):
        return [
            Problem(
                where,
                f"holds files that no build wrote (it has no '{MARKER}' file), "
                f"so it is not replaced; empty or delete it, or {fix}",
            )
        ]
    return []


def manifest_tasks(
    project: Project, catalog: TaskCatalog
) -> tuple[list[ManifestTask], list[Problem]]:
    """Each task with its file relative to the sources and its description."""
    src_dir = project.config.src_dir
    # Plain strings: this loop runs once per task.
    inside = os.path.join(src_dir, "")
    tasks, problems = [], []
    for name, entry in project.entries.items():
        file = None
        if entry.file is not None:
            path = entry.file
            if not path.startswith(inside):
                problems.append(
                    Problem(
                        f"task '{name}'",
                        f"file '{path}' lies outside src_dir '{src_dir}', so it "
                        "would not ship; move tasks_dir inside src_dir",
                    )
                )
                continue
            file = path.removeprefix(inside).replace(os.sep, "/")
        try:
            description = catalog.description(name)
        except TaskError:
            description = ""
        tasks.append(ManifestTask(name, file, entry.handler, description))
    return tasks, problems


def app_problems(config: Config) -> list[Problem]:
    """The `app` module must be among the sources or installed."""
    if not config.app:
        return []
    module = config.app.partition(":")[0]
    relative = Path(*module.split("."))
    candidates = (relative.with_suffix(".py"), relative / "__init__.py")
    if any((config.src_dir / path).is_file() for path in candidates):
        return []

    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return []
    where = config.file.name if config.file else "config"
    return [
        Problem(
            f"{where}: app",
            f"module '{module}' of app '{config.app}' is neither under src_dir "
            f"'{config.src_dir}' nor installed; fix the module path",
        )
    ]


def translate_schedules(
    config: Config, preset: Preset, options: dict[str, Any]
) -> tuple[list[Schedule], list[Problem], list[str]]:
    """Every pattern in the preset's dialect, with problems and warnings."""
    where = config.file.name if config.file else "config"
    if preset.dialect == "server":
        as_given = [
            Schedule(pattern, pattern, tuple(names))
            for pattern, names in config.scheduled_tasks.items()
        ]
        return as_given, limit_problems(preset, as_given, where), []

    from .. import dialects
    from ..runtime.cron import parse_pattern

    schedules = []
    problems: list[Problem] = []
    warnings: list[str] = []
    plan = options.get("plan")
    for pattern, names in config.scheduled_tasks.items():
        key = f"{where}: scheduled_tasks.'{pattern}'"
        try:
            if preset.dialect == "cloudflare":
                translated = dialects.to_cloudflare(
                    parse_pattern(pattern), config.timezone
                )
            else:
                translated = dialects.to_vercel(
                    parse_pattern(pattern), config.timezone, plan
                )
        except dialects.DialectError as error:
            problems.append(Problem(key, str(error)))
            continue
        schedules.append(
            Schedule(pattern, translated.text, tuple(names), tuple(translated.warnings))
        )
        warnings += translated.warnings

    try:
        crons = [schedule.cron for schedule in schedules]
        warnings += dialects.check_counts(preset.dialect, crons, plan)
    except dialects.DialectError as error:
        problems.append(Problem(f"{where}: scheduled_tasks", str(error)))
    problems += limit_problems(preset, schedules, where)
    return schedules, problems, warnings


def limit_problems(
    preset: Preset, schedules: list[Schedule], where: str
) -> list[Problem]:
    """Patterns that collide once translated, or more than the preset allows."""
    problems = []
    first: dict[str, str] = {}
    for schedule in schedules:
        earlier = first.setdefault(schedule.cron, schedule.pattern)
        if earlier != schedule.pattern:
            problems.append(
                Problem(
                    f"{where}: scheduled_tasks.'{schedule.pattern}'",
                    f"reads as '{schedule.cron}' on preset '{preset.name}', like "
                    f"'{earlier}'; merge the two patterns into one",
                )
            )
    most = preset.limits.get("schedules")
    if most is not None and len(schedules) > most:
        problems.append(
            Problem(
                f"{where}: scheduled_tasks",
                f"has {len(schedules)} patterns; preset '{preset.name}' allows at "
                f"most {most}",
            )
        )
    return problems


@contextmanager
def staging_folder(output: Path) -> Iterator[Path]:
    """A fresh folder next to the output (same file system, so the final
    rename is atomic), removed again if the build fails inside it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(output)
    staging = Path(
        tempfile.mkdtemp(prefix=sibling_prefix(output, "new"), dir=output.parent)
    )
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_output(staging: Path, output: Path) -> None:
    """Swap the staging folder in; the old output stays until the swap is done."""
    aside = None
    if output.exists():
        aside = output.parent / f"{sibling_prefix(output, 'old')}{uuid.uuid4().hex[:8]}"
        os.rename(output, aside)
    try:
        os.rename(staging, output)
    except BaseException:
        if aside is not None:
            os.rename(aside, output)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def recover_output(output: Path) -> None:
    """Put back the output a build set aside and died before replacing."""
    if output.exists():
        return
    aside = [p for p in output.parent.glob(sibling_prefix(output, "old") + "*")]
    aside = [path for path in aside if path.is_dir()]
    if aside:
        latest = max(aside, key=lambda path: path.stat().st_mtime)
        if (latest / MARKER).is_file():
            logger.warning("restoring '%s', set aside by an interrupted build", output)
            os.rename(latest, output)


def clean_leftovers(output: Path) -> None:
    """Remove what interrupted builds left next to the output."""
    for kind in ("new", "old"):
        for leftover in output.parent.glob(sibling_prefix(output, kind) + "*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def sibling_prefix(output: Path, kind: str) -> str:
    """Names of the folders a build keeps next to the output: hidden, and
    telling the output they belong to."""
    name = output.name if output.name.startswith(".") else f".{output.name}"
    return f"{name}.{kind}-"


def write_marker(staging: Path, plan: BuildPlan) -> None:
    marker = {
        "preset": plan.preset.name,
        "builtAt": plan.built_at.isoformat(timespec="seconds"),
        "versions": plan.versions,
    }
    (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def written_items(emitter: Emitter) -> list[Written]:
    """The emitter's files one by one, the bundle's folders in total."""
    items = [Written(part.path, part.files, part.size) for part in emitter.report.parts]
    for path in dict.fromkeys(emitter.written):
        relative = emitter.relative(path)
        items.append(Written(relative, 1, path.stat().st_size))
    return sorted(items, key=lambda item: item.path)


def size_warnings(preset: Preset, written: list[Written]) -> list[str]:
    most = preset.limits.get("bundle_mb")
    total = sum(item.size for item in written)
    if most is None or total <= most * 1024 * 1024:
        return []
    return [
        f"the output holds {_size(total)}, more than the {most} MB preset "
        f"'{preset.name}' allows; leave dependencies out to shrink it"
    ]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size / 1024 / 1024:.1f} MB"
