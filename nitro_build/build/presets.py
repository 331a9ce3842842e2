"""Presets: what a build target is, written as data.

A preset is one TOML file under `presets/` (shipped inside the wheel as
`nitro_build/presets/`). Its templates live under `templates/` (Jinja2). A
file whose name starts with `_` is a base that others extend; it is never a
build target itself. The format::

    name = "node-server"          # must match the file name
    extends = "_server"           # optional: a preset (or base) to start from
    description = "Long-running Python server with its own scheduler"
    dialect = "server"            # how schedules are translated: "server"
                                  # (croner's dialect as is), "cloudflare",
                                  # "vercel" (see nitro_build/dialects.py)
    emitter = "server"            # a module under nitro_build.build.emitters
                                  # (its `Emitter` class), or "pkg.module:Class"
    options = "cloudflare"        # optional: the config table read as
                                  # preset options (config.preset_options)
    templates = "templates"       # optional: an extra template folder,
                                  # relative to the preset file; searched
                                  # before the built-in templates/

    [bundle]                      # where the runnable code goes in the output
    folder = "server"             # runtime + nitro_build, relative to output
    sources = "app"               # the user's sources, relative to folder
    packages = "_vendor"          # vendored pure-Python distributions,
                                  # relative to folder; "" vendors nothing and
                                  # lists every distribution in requirements
    requirements = "requirements.txt"   # relative to output; written only
                                        # when something is listed in it
    runtime = true                # copy nitro_build/__init__.py + runtime/
    runtime_exclude = []          # runtime file names to leave out
    dependencies = ["croniter", "uvicorn"]  # distributions the target needs
                                            # (with what they require)
    project_dependencies = true   # also the project's pyproject dependencies

    [limits]                      # checked by the pipeline; the emitter may
    schedules = 100               # read more: at most this many patterns
    bundle_mb = 10                # warn when the output is larger

    [preview]                     # optional; how to run the output locally
    command = "python server/index.py"

    [[files]]                     # templates rendered into the output
    template = "server/index.py.j2"     # relative to a template folder
    output = "server/index.py"          # relative to the output

    [extra]                       # free-form data for the emitter/templates

`extends` merges the parent under the child: tables merge key by key, lists
and values are replaced, except `files`, where a child entry replaces the
parent's entry with the same `output` and new entries are appended.

Third-party presets register an entry point in the group `nitro_build.presets`;
its name is the preset name and it points at a dict of preset data, a path to
a TOML file, or a function returning either. Paths in such data (templates)
are relative to the TOML file, or to the module that defines the entry point.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from importlib import metadata

ENTRY_POINT_GROUP = "nitro_build.presets"
DIALECTS = ("server", "cloudflare", "vercel")
KEYS = {
    "name",
    "extends",
    "description",
    "dialect",
    "emitter",
    "options",
    "templates",
    "bundle",
    "limits",
    "preview",
    "files",
    "extra",
}
BUNDLE_DEFAULTS: dict[str, Any] = {
    "folder": ".",
    "sources": ".",
    "packages": "",
    "requirements": "requirements.txt",
    "runtime": True,
    "runtime_exclude": [],
    "dependencies": [],
    "project_dependencies": True,
}


class PresetError(UsageError):
    """A preset that does not exist or whose data is wrong; exits 2."""


@dataclass(frozen=True)
class FileSpec:
    """One template rendered into the output."""

    template: str
    output: str


@dataclass(frozen=True)
class Bundle:
    """Where the runtime, the user's sources and the packages go."""

    folder: str
    sources: str
    packages: str
    requirements: str
    runtime: bool
    runtime_exclude: tuple[str, ...]
    dependencies: tuple[str, ...]
    project_dependencies: bool


@dataclass(frozen=True)
class Preset:
    """A build target, with its `extends` chain already merged in."""

    name: str
    description: str
    dialect: str
    emitter: str
    bundle: Bundle
    files: tuple[FileSpec, ...]
    template_dirs: tuple[Path, ...]
    options: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    preview: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def package_data_dir(name: str) -> Path:
    """`presets` or `templates`: inside the installed package, else the checkout."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / name
    return shipped if shipped.is_dir() else package.parent / name


def load_preset(name: str) -> Preset:
    """The named preset, merged with what it extends; unknown names list the known."""
    data, chain = _merged(name, ())
    return _build(name, data, chain)


def known_presets() -> list[str]:
    """Every preset name a build accepts: built-in files, then entry points."""
    names = {path.stem for path in _builtin_files() if not path.stem.startswith("_")}
    names.update(_entry_points())
    return sorted(names)


def _merged(name: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], list[Path]]:
    """The raw data of a preset over its parents, and their template folders."""
    if name in seen:
        loop = " -> ".join([*seen, name])
        raise PresetError(f"preset '{name}' extends itself: {loop}")

    data, base = _raw(name, seen[-1] if seen else None)
    templates = [base / data["templates"]] if "templates" in data else []
    parent = data.get("extends")
    if not parent:
        return data, templates

    parent_data, parent_templates = _merged(str(parent), (*seen, name))
    parent_data.pop("name", None)
    return _merge(parent_data, data), templates + parent_templates


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(parent)
    for key, value in child.items():
        if key == "files":
            by_output = {entry.get("output"): entry for entry in parent.get(key, [])}
            by_output.update({entry.get("output"): entry for entry in value})
            merged[key] = list(by_output.values())
        elif isinstance(value, dict) and isinstance(parent.get(key), dict):
            merged[key] = {**parent[key], **value}
        else:
            merged[key] = value
    return merged


def _raw(name: str, wanted_by: str | None) -> tuple[dict[str, Any], Path]:
    """A preset's own data and the folder its relative paths start from."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise PresetError(
            f"preset '{name}' is not a valid name; use a name such as 'node-server'"
        )
    path = package_data_dir("presets") / f"{name}.toml"
    if path.is_file():
        return _read_toml(path), path.parent

    point = _entry_points().get(name)
    if point is not None:
        return _from_entry_point(name, point)

    known = known_presets()
    message = f"preset '{name}' is not known"
    if wanted_by:
        message += f" (preset '{wanted_by}' extends it)"
    nearest = difflib.get_close_matches(name, known, n=1)
    if nearest:
        message += f"; did you mean '{nearest[0]}'?"
    raise PresetError(f"{message}; known presets: {', '.join(known)}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PresetError(f"preset file '{path}' cannot be read: {error}") from None


def _from_entry_point(
    name: str, point: metadata.EntryPoint
) -> tuple[dict[str, Any], Path]:
    try:
        value = point.load()
    except Exception as error:
        raise PresetError(
            f"preset '{name}' from entry point '{point.value}' failed to load: "
            f"{type(error).__name__}: {error}"
        ) from None
    if callable(value):
        value = value()

    if isinstance(value, str | Path):
        path = Path(value)
        return _read_toml(path), path.parent
    if isinstance(value, dict):
        module = sys.modules.get(point.module)
        origin = getattr(module, "__file__", None)
        return dict(value), Path(origin).parent if origin else Path.cwd()
    raise PresetError(
        f"preset '{name}' from entry point '{point.value}' is "
        f"{type(value).__name__}; it must be a dict of preset data or a path to "
        "a TOML file"
    )


def _build(name: str, data: dict[str, Any], templates: list[Path]) -> Preset:
    """Check merged data and turn it into a Preset; every problem at once."""
    where = f"preset '{name}'"
    problems = [f"unknown key '{key}'" for key in data if key not in KEYS]
    if data.get("name", name) != name:
        problems.append(f"name '{data['name']}' differs from the file name '{name}'")
    dialect = data.get("dialect", "server")
    if dialect not in DIALECTS:
        choices = ", ".join(f"'{d}'" for d in DIALECTS)
        problems.append(f"dialect '{dialect}' is not one of {choices}")
    if not isinstance(data.get("emitter"), str):
        problems.append("'emitter' must name an emitter module, e.g. 'server'")

    bundle_data = {**BUNDLE_DEFAULTS, **data.get("bundle", {})}
    unknown = set(bundle_data) - set(BUNDLE_DEFAULTS)
    problems += [f"unknown key 'bundle.{key}'" for key in sorted(unknown)]
    files = []
    for index, entry in enumerate(data.get("files", [])):
        if not isinstance(entry, dict) or {"template", "output"} - entry.keys():
            problems.append(f"files[{index}] needs 'template' and 'output'")
            continue
        files.append(FileSpec(str(entry["template"]), str(entry["output"])))

    if problems:
        raise PresetError(f"{where} is not valid: " + "; ".join(problems))
    return Preset(
        name=name,
        description=str(data.get("description", "")),
        dialect=dialect,
        emitter=data["emitter"],
        bundle=Bundle(
            folder=str(bundle_data["folder"]),
            sources=str(bundle_data["sources"]),
            packages=str(bundle_data["packages"]),
            requirements=str(bundle_data["requirements"]),
            runtime=bool(bundle_data["runtime"]),
            runtime_exclude=tuple(bundle_data["runtime_exclude"]),
            dependencies=tuple(bundle_data["dependencies"]),
            project_dependencies=bool(bundle_data["project_dependencies"]),
        ),
        files=tuple(files),
        template_dirs=(*templates, package_data_dir("templates")),
        options=data.get("options"),
        limits=dict(data.get("limits", {})),
        preview=dict(data.get("preview", {})),
        extra=dict(data.get("extra", {})),
    )


def load_emitter_class(preset: Preset) -> Any:
    """The emitter class a preset names: a built-in module or "pkg.mod:Class"."""
    module_name, _, attr = preset.emitter.partition(":")
    if not attr:
        module_name = f"{__package__}.emitters.{module_name}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PresetError(
            f"preset '{preset.name}': emitter '{preset.emitter}' cannot be "
            f"imported: {error}"
        ) from None
    emitter = getattr(module, attr or "Emitter", None)
    if emitter is None:
        raise PresetError(
            f"preset '{preset.name}': emitter module '{module_name}' has no "
            f"'{attr or 'Emitter'}' class"
        )
    return emitter  # type: ignore[no-any-return]


def _builtin_files() -> list[Path]:
    return sorted(package_data_dir("presets").glob("*.toml"))


@cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    # Read only for a preset that is not built in: scanning every installed
    # distribution's entry points costs more than the rest of preset loading.
    from importlib import metadata

    return {
        point.name: point for point in metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
