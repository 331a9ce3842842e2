"""The emitter base class: the steps every preset's output shares.

An emitter receives the `BuildPlan` and a staging folder, and the pipeline
calls, in order, `lay_out_bundle()` then `emit()`. The defaults copy the
bundle as the preset's `[bundle]` table says and render every `[[files]]`
entry; a platform's emitter overrides `emit()` (calling `super().emit()`) to
write what data cannot say, with the helpers below. `check(plan)` runs before
anything is written and returns problems that stop the build.

Helpers, all taking paths relative to the output folder:
`render(template, output, **extra)`, `write_text`, `write_json`,
`write_toml`, `copy_file`, `vendor(requirements, folder)`; `context()` is
what templates see; `manifest()` is the JSON the built runtime reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import Problem
from ...state import state_folder
from .. import bundle
from ..bundle import BundleReport, Part

if TYPE_CHECKING:
    import jinja2

    from ..model import BuildPlan

logger = logging.getLogger(__name__)

# Generated modules keep a line of their embedded manifest within this width.
LITERAL_WIDTH = 88


class Emitter:
    """Writes one preset's output into a staging folder."""

    def __init__(self, plan: BuildPlan, folder: Path) -> None:
        self.plan = plan
        self.preset = plan.preset
        self.folder = folder
        self.report = BundleReport()
        self.written: list[Path] = []
        self._templates: jinja2.Environment | None = None

    @classmethod
    def check(cls, plan: BuildPlan) -> list[Problem]:
        """Problems only this platform has; the build stops on any."""
        return []

    # The steps the pipeline calls

    def lay_out_bundle(self) -> None:
        """Copy the runtime, the sources and the packages; list the rest."""
        spec = self.preset.bundle
        root = self.path(spec.folder)
        root.mkdir(parents=True, exist_ok=True)
        store = bundle.FileStore(self.cache_folder("files"))

        if spec.runtime:
            files, size = bundle.copy_runtime(root, spec.runtime_exclude, store)
            self.report.parts.append(
                Part(self.relative(root / "nitro_build"), files, size)
            )

        sources = root / spec.sources
        files, size = bundle.copy_sources(
            self.plan.config.src_dir, sources, self.skipped_sources(), store
        )
        self.report.parts.append(Part(self.relative(sources), files, size))
        store.prune()

        requirements = self.dependencies()
        if spec.project_dependencies:
            requirements += bundle.vendor.project_dependencies(self.plan.config.root)
        self.vendor(
            requirements, spec.folder + "/" + spec.packages if spec.packages else None
        )

    def dependencies(self) -> list[str]:
        """The packages the shipped runtime needs in this output."""
        return list(self.preset.bundle.dependencies)

    def emit(self) -> None:
        """Render every `[[files]]` entry of the preset."""
        for entry in self.preset.files:
            self.render(entry.template, entry.output)

    # Helpers for emitters

    def path(self, output: str) -> Path:
        """An output-relative path as a path in the staging folder."""
        return (
            (self.folder / output).resolve() if output not in ("", ".") else self.folder
        )

    def relative(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix() or "."

    def cache_folder(self, kind: str) -> Path:
        """The project's folder for what builds keep between them."""
        return state_folder(self.plan.config.root) / "cache" / kind

    def context(self) -> dict[str, Any]:
        """What every template sees."""
        plan = self.plan
        return {
            "plan": plan,
            "preset": plan.preset,
            "config": plan.config,
            "tasks": plan.tasks,
            "schedules": plan.schedules,
            "options": plan.options,
            "extra": plan.preset.extra,
            "manifest": self.manifest(),
            "versions": plan.versions,
            "built_at": plan.built_at.isoformat(timespec="seconds"),
        }

    def manifest(self) -> dict[str, Any]:
        return self.plan.manifest()

    def render(self, template: str, output: str, **extra: Any) -> Path:
        """Render a Jinja2 template with `context()` plus extra into output."""
        environment = self._environment()
        text = environment.get_template(template).render(**self.context(), **extra)
        return self.write_text(output, text)

    def write_text(self, output: str, text: str) -> Path:
        target = self.path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self.written.append(target)
        return target

    def write_json(self, output: str, data: Any) -> Path:
        return self.write_text(output, json.dumps(data, indent=2) + "\n")

    def write_toml(self, output: str, data: dict[str, Any]) -> Path:
        import tomli_w

        return self.write_text(output, tomli_w.dumps(data))

    def copy_file(self, source: Path, output: str) -> Path:
        target = self.path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        self.written.append(target)
        return target

    def vendor(self, requirements: list[str], folder: str | None) -> None:
        """Copy pure distributions into folder (None: list them all) and
        write the preset's requirements file for whatever cannot be copied."""
        target = self.path(folder) if folder is not None else None
        cache = self.cache_folder("vendor")
        part, resolution = bundle.vendor_packages(requirements, target, cache)
        if part is not None and target is not None:
            self.report.parts.append(Part(self.relative(target), part.files, part.size))
        self.report.warnings += resolution.warnings
        self.report.listed += resolution.listed
        self.report.versions.update(resolution.versions)

        if self.report.listed:
            lines = "".join(f"{line}\n" for line in dict.fromkeys(self.report.listed))
            self.write_text(self.preset.bundle.requirements, lines)

    def skipped_sources(self) -> list[Path]:
        """Folders under the sources that never ship: outputs, staging."""
        output = self.plan.output
        hidden = output.name if output.name.startswith(".") else f".{output.name}"
        staged = output.parent.glob(f"{hidden}.*")
        return [output, self.plan.config.output_dir, self.folder, *staged]

    def _environment(self) -> jinja2.Environment:
        if self._templates is None:
            import jinja2

            # Compiled templates are kept between builds; each is checked
            # against its template's source before use.
            compiled = self.cache_folder("templates")
            compiled.mkdir(parents=True, exist_ok=True)
            self._templates = jinja2.Environment(
                loader=jinja2.FileSystemLoader(
                    [str(p) for p in self.preset.template_dirs]
                ),
                undefined=jinja2.StrictUndefined,
                keep_trailing_newline=True,
                autoescape=False,
                bytecode_cache=jinja2.FileSystemBytecodeCache(str(compiled)),
            )
            self._templates.filters["json"] = lambda value, indent=None: json.dumps(
                value, indent=indent
            )
            self._templates.filters["pyrepr"] = repr
        return self._templates


def python_literal(value: Any, indent: int = 0) -> str:
    """Plain data (dicts, lists, text, numbers, None) as a Python literal for a
    generated module: one item per line wherever the whole would not fit on
    one. Unlike `pprint`, it never tries a layout twice, so a manifest of
    thousands of tasks costs about what `repr` does."""
    flat = repr(value)
    if indent + len(flat) <= LITERAL_WIDTH or not isinstance(value, dict | list):
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        lines = [
            f"{pad}{key!r}: {python_literal(item, indent + 4)}"
            for key, item in value.items()
        ]
        opening, closing = "{", "}"
    else:
        lines = [f"{pad}{python_literal(item, indent + 4)}" for item in value]
        opening, closing = "[", "]"
    return f"{opening}\n" + ",\n".join(lines) + f",\n{' ' * indent}{closing}"


def options_where(plan: Any) -> str:
    """Where the preset's options live, for problems: file and table."""
    table = plan.preset.options or plan.preset.name
    config_file = plan.config.file
    return f"{config_file.name}: {table}" if config_file else table


def reserved_options(plan: Any, reserved: Mapping[str, str]) -> list[Problem]:
    """A problem for each option the emitter writes itself, with the reason."""
    where = options_where(plan)
    return [
        Problem(f"{where}.{key}", f"cannot be set: {why}; remove it")
        for key, why in reserved.items()
        if key in plan.options
    ]
