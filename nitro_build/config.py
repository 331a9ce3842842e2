"""Find and read the project's config file into one validated `Config`.

The config lives in exactly one file at the project root: `nitro.config.toml`,
`.yaml`/`.yml`, `.json`, `.py`, or a `[tool.nitro]` table in `pyproject.toml`.
A `.py` config is executed, and its module-level name `config` must hold a dict
of the same settings the other forms write, for example::

    config = {"experimental": {"tasks": True}, "scheduled_tasks": {...}}

Keys are snake_case; each key's camelCase spelling (`scheduledTasks`,
`scheduler.lockUrl`) is accepted too. Keys inside per-preset tables pass
through untouched, since they belong to the platform. Every problem found is
collected and raised together as one `ConfigError`.
"""

from __future__ import annotations

import datetime
import difflib
import json
import logging
import os
import re
import runpy
import sys
import tomllib
import traceback
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem

logger = logging.getLogger(__name__)

CONFIG_FILES = (
    "nitro.config.toml",
    "nitro.config.yaml",
    "nitro.config.yml",
    "nitro.config.json",
    "nitro.config.py",
)
PYPROJECT = "pyproject.toml"
DEFAULT_PRESET = "node-server"
_FORMS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


@dataclass(frozen=True)
class TaskConfig:
    """A task declared in the config rather than (or on top of) a task file."""

    handler: str | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class Config:
    """The project's settings, with every default filled in and paths absolute."""

    root: Path
    file: Path | None = None
    experimental_tasks: bool = False
    scheduled_tasks: dict[str, list[str]] = field(default_factory=dict)
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    tasks_dir: Path
    src_dir: Path
    preset: str = DEFAULT_PRESET
    output_dir: Path
    timezone: str = "UTC"
    app: str | None = None
    scheduler: dict[str, Any] = field(default_factory=dict)
    preset_options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Reader:
    """Collects the problems of one config file while its keys are checked."""

    label: str
    problems: list[Problem] = field(default_factory=list)

    def problem(self, key: str, message: str) -> None:
        where = f"{self.label}: {key}" if key else self.label
        self.problems.append(Problem(where, message))


# A check turns one raw value into its clean form, reporting what is wrong to
# the reader; once a problem is reported its return value is never used.
Check = Callable[[Any, str, _Reader], Any]


def find_config_file(root: Path) -> Path | None:
    """The project's one config file, or None; several is a ConfigError."""
    found = [root / name for name in CONFIG_FILES if (root / name).is_file()]
    if _has_nitro_table(root / PYPROJECT):
        found.append(root / PYPROJECT)

    if len(found) > 1:
        names = ", ".join(f"'{path.name}'" for path in found)
        message = (
            f"several config files found: {names}; keep one of them and move "
            "its settings there"
        )
        raise ConfigError([Problem(str(root), message)])
    return found[0] if found else None


def load_config(
    root: Path,
    *,
    preset: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read the project's config, or the defaults when it has none.

    The preset is the `preset` argument if given, else NITRO_PRESET from
    `environ` (the process environment by default), else the config's
    `preset`, else "node-server".
    """
    root = Path(root).resolve()
    if not root.is_dir():
        message = "is not a folder; run nitro inside the project or pass its path"
        raise ConfigError([Problem(f"'{root}'", message)])

    file = find_config_file(root)
    settings = _read_settings(file) if file else {}
    config = Config(
        root=root,
        file=file,
        experimental_tasks=settings.get("experimental", {}).get("tasks", False),
        scheduled_tasks=settings.get("scheduled_tasks", {}),
        tasks=settings.get("tasks", {}),
        tasks_dir=(root / settings.get("tasks_dir", "tasks")).resolve(),
        src_dir=(root / settings.get("src_dir", ".")).resolve(),
        preset=_choose_preset(preset, environ, settings),
        output_dir=(root / settings.get("output_dir", ".output")).resolve(),
        timezone=settings.get("timezone", "UTC"),
        app=settings.get("app"),
        scheduler=settings.get("scheduler", {}),
        preset_options={name: settings.get(name, {}) for name in PRESET_TABLES},
    )

    if not config.experimental_tasks and config.tasks_dir.is_dir():
        logger.warning(
            "tasks are not scanned: '%s' exists but experimental.tasks is not "
            "enabled; to enable tasks, %s",
            config.tasks_dir,
            _enable_hint(file),
        )
    return config


def _read_settings(file: Path) -> dict[str, Any]:
    data = _parse(file)

    is_pyproject = file.name == PYPROJECT
    reader = _Reader(f"{file.name} [tool.nitro]" if is_pyproject else file.name)
    if data is None and file.suffix in (".yaml", ".yml"):
        data = {}
    settings = _read_table(data, _known_keys(), "", reader)

    if reader.problems:
        raise ConfigError(reader.problems)
    return settings


def _choose_preset(
    preset: str | None, environ: Mapping[str, str] | None, settings: dict[str, Any]
) -> str:
    environ = os.environ if environ is None else environ
    chosen = preset or environ.get("NITRO_PRESET") or settings.get("preset")
    return chosen or DEFAULT_PRESET


def _known_keys() -> dict[str, Check]:
    tables = {name: _preset_table(fields) for name, fields in PRESET_TABLES.items()}
    return {**KEYS, **tables}


# Reading files


def _parse(file: Path) -> Any:
    """The file's raw settings; a file that cannot be read is a ConfigError."""
    if file.suffix == ".py":
        return _run_python(file)

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(file, None, None, f"cannot be read: {error}") from None

    if file.suffix == ".toml":
        data = _parse_toml(text, file)
        return data["tool"]["nitro"] if file.name == PYPROJECT else data
    if file.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise _unreadable(file, error.lineno, error.colno, error.msg) from None

    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        reason = getattr(error, "problem", None) or str(error)
        raise _unreadable(file, line, column, reason) from None


def _parse_toml(text: str, file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        reason = str(error)
        place = re.search(r"\s*\(at line (\d+), column (\d+)\)$", reason)
        if not place:
            raise _unreadable(file, None, None, reason) from None
        line, column = int(place[1]), int(place[2])
        raise _unreadable(file, line, column, reason[: place.start()]) from None


def _run_python(file: Path) -> Any:
    sys.path.insert(0, str(file.parent))
    try:
        namespace = runpy.run_path(str(file), run_name="nitro_config")
    except SyntaxError as error:
        raise _unreadable(file, error.lineno, error.offset, error.msg) from None
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        lines = [frame.lineno for frame in frames if frame.filename == str(file)]
        reason = f"raised {type(error).__name__}: {error}"
        raise _unreadable(file, lines[-1] if lines else None, None, reason) from None
    finally:
        sys.path.remove(str(file.parent))

    if "config" not in namespace:
        message = (
            "defines no module-level 'config'; assign the settings dict to it, "
            "e.g. config = {'experimental': {'tasks': True}}"
        )
        raise ConfigError([Problem(file.name, message)])
    return namespace["config"]


def _unreadable(
    file: Path, line: int | None, column: int | None, reason: str
) -> ConfigError:
    where = file.name
    if line:
        where += f":{line}" + (f":{column}" if column else "")
    form = _FORMS.get(file.suffix, "Python")
    message = f"is not a valid {form} config: {reason}; fix the file there"
    return ConfigError([Problem(where, message)])


def _has_nitro_table(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    data = _parse_toml(pyproject.read_text(encoding="utf-8"), pyproject)
    tool = data.get("tool")
    return isinstance(tool, dict) and "nitro" in tool


def _enable_hint(file: Path | None) -> str:
    if file is None:
        return "create nitro.config.toml with the line 'experimental.tasks = true'"
    if file.name == PYPROJECT:
        return "add 'tasks = true' under '[tool.nitro.experimental]' in pyproject.toml"
    if file.suffix == ".py":
        return (
            f"add 'experimental': {{'tasks': True}} to the config dict in {file.name}"
        )
    setting = {
        ".toml": "'experimental.tasks = true' "
        "(or 'tasks = true' under '[experimental]')",
        ".json": '\'"experimental": {"tasks": true}\'',
    }.get(file.suffix, "'experimental: {tasks: true}'")
    return f"add {setting} to {file.name}"


# Checking tables and keys


def _read_table(
    value: Any, fields: Mapping[str, Check], key: str, reader: _Reader
) -> dict[str, Any]:
    """Check a table of known keys, accepting each key's camelCase spelling."""
    if not _is_table(value, key, reader):
        return {}

    aliases = {_camel(name): name for name in fields if _camel(name) != name}
    settings: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for given, item in value.items():
        name = aliases.get(given, given)
        if name not in fields:
            reader.problem("", _unknown_key(given, fields, aliases, key))
            continue
        if name in spelled:
            message = (
                f"is given twice, as '{spelled[name]}' and '{given}'; keep one spelling"
            )
            reader.problem(_join(key, name), message)
            continue
        spelled[name] = given
        settings[name] = fields[name](item, _join(key, name), reader)
    return settings


def _unknown_key(
    given: Any, fields: Mapping[str, Check], aliases: dict[str, str], key: str
) -> str:
    spellings = [*fields, *aliases]
    message = f"key '{_join(key, str(given))}' is not known"
    top_level = {*KEYS, *(_camel(name) for name in KEYS)}
    if key and str(given) in top_level:
        return (
            f"{message} inside '{key}', but '{given}' is a top-level key; move it "
            "above the first [table] header (in TOML, keys after a header belong "
            "to that table)"
        )
    nearest = difflib.get_close_matches(str(given), spellings, n=1)
    if nearest:
        return f"{message}; did you mean '{_join(key, nearest[0])}'?"
    known = ", ".join(f"'{_join(key, name)}'" for name in fields)
    return f"{message}; the keys known here are {known}"


def _preset_table(fields: Mapping[str, Check]) -> Check:
    """A per-preset table: the listed keys are checked, the rest pass through."""

    def check(value: Any, key: str, reader: _Reader) -> dict[str, Any]:
        if not _is_table(value, key, reader):
            return {}
        options = dict(value)
        for name in fields.keys() & options.keys():
            options[name] = fields[name](options[name], _join(key, name), reader)
        return options

    return check


def _nested(fields: Mapping[str, Check]) -> Check:
    def check(value: Any, key: str, reader: _Reader) -> dict[str, Any]:
        return _read_table(value, fields, key, reader)

    return check


def _is_table(value: Any, key: str, reader: _Reader) -> bool:
    if isinstance(value, dict):
        return True
    reader.problem(key, f"must be a table of keys and values, got {_show(value)}")
    return False


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _join(key: str, name: str) -> str:
    if not key:
        return name
    return f"{key}.{name}" if name.isidentifier() else f"{key}.'{name}'"


_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a table",
    type(None): "nothing",
}


def _show(value: Any) -> str:
    kind = _KINDS.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


# Checking values


def _boolean(value: Any, key: str, reader: _Reader) -> bool:
    if not isinstance(value, bool):
        reader.problem(key, f"must be true or false, got {_show(value)}")
    return bool(value)


def _text(value: Any, key: str, reader: _Reader) -> str:
    if not isinstance(value, str) or not value.strip():
        reader.problem(key, f"must be non-empty text, got {_show(value)}")
    return str(value)


def _path(value: Any, key: str, reader: _Reader) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        message = f"must be a folder path relative to the project, got {_show(value)}"
        reader.problem(key, message)
    return str(value)


def _timezone(value: Any, key: str, reader: _Reader) -> str:
    if not isinstance(value, str) or not value.strip():
        return _text(value, key, reader)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        message = (
            f"time zone {value!r} is not known; use an IANA zone name such as "
            "'UTC' or 'Europe/Berlin'"
        )
        reader.problem(key, message)
    return str(value)


def _import_target(value: Any, key: str, reader: _Reader) -> str:
    module, _, attr = str(value).partition(":")
    if not isinstance(value, str) or not module.strip() or not attr.strip():
        message = f"must be 'module:attr', such as 'myapp.main:app', got {_show(value)}"
        reader.problem(key, message)
    return str(value)


def _url(value: Any, key: str, reader: _Reader) -> str:
    if not isinstance(value, str) or "://" not in value:
        message = (
            f"must be a URL such as 'redis://localhost:6379/0', got {_show(value)}"
        )
        reader.problem(key, message)
    elif _has_password(value):
        # The value itself is not shown: it holds the secret.
        reader.problem(
            key,
            "holds a password, which the build would write into the output; keep "
            "the URL without it here (so the build still ships redis) and set the "
            "full URL as NITRO_LOCK_URL where the output runs, which wins",
        )
    return str(value)


def _has_password(url: str) -> bool:
    """True when the URL carries a password, in its user part or its query."""
    try:
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        return parts.password is not None or any(k == "password" for k, _ in query)
    except ValueError:
        return False


def _iso_date(value: Any, key: str, reader: _Reader) -> str:
    # TOML and YAML read an unquoted 2024-09-23 as a date already.
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    try:
        valid = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
        datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        shown = _show(value)
        message = f"must be a date written YYYY-MM-DD like '2024-09-23', got {shown}"
        reader.problem(key, message)
    return str(value)


def _one_of(*choices: str) -> Check:
    def check(value: Any, key: str, reader: _Reader) -> str:
        if value not in choices:
            accepted = ", ".join(f"'{choice}'" for choice in choices)
            reader.problem(key, f"must be one of {accepted}, got {_show(value)}")
        return str(value)

    return check


def _tasks(value: Any, key: str, reader: _Reader) -> dict[str, TaskConfig]:
    if not _is_table(value, key, reader):
        return {}

    tasks: dict[str, TaskConfig] = {}
    for name, entry in value.items():
        where = _join(key, str(name))
        if not isinstance(name, str) or not name.strip():
            reader.problem(
                where, "a task name must be non-empty text, such as 'db:migrate'"
            )
            continue
        fields = _read_table(entry, TASK_KEYS, where, reader)
        tasks[name] = TaskConfig(**fields)
    return tasks


def _schedules(value: Any, key: str, reader: _Reader) -> dict[str, list[str]]:
    from .runtime.cron import PatternError, parse_pattern

    if not _is_table(value, key, reader):
        return {}

    schedules: dict[str, list[str]] = {}
    for pattern, names in value.items():
        where = f"{key}.'{pattern}'"
        if not isinstance(pattern, str):
            reader.problem(where, f"a cron pattern must be text, got {_show(pattern)}")
            continue
        try:
            parse_pattern(pattern)
        except PatternError as error:
            reader.problem(where, error.reason)
        schedules[pattern] = _task_names(names, where, reader)
    return schedules


def _task_names(value: Any, key: str, reader: _Reader) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        message = f"must be a task name or a list of them, got {_show(value)}"
        reader.problem(key, message)
        return []
    if not names:
        reader.problem(key, "lists no tasks; name at least one or remove the pattern")

    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            message = f"task names must be non-empty text, got {_show(name)}"
            reader.problem(key, message)
        elif name in seen:
            message = f"names task '{name}' twice; list each task once"
            reader.problem(key, message)
        else:
            seen.add(name)
    return list(names)


TASK_KEYS: dict[str, Check] = {"handler": _text, "description": _text}

KEYS: dict[str, Check] = {
    "experimental": _nested({"tasks": _boolean}),
    "scheduled_tasks": _schedules,
    "tasks": _tasks,
    "tasks_dir": _path,
    "src_dir": _path,
    "preset": _text,
    "output_dir": _path,
    "timezone": _timezone,
    "app": _import_target,
    "scheduler": _nested({"lock_url": _url}),
}

# Per-preset tables; a new preset adds its table here. Keys not listed in a
# table pass through to the preset unchecked.
PRESET_TABLES: dict[str, dict[str, Check]] = {
    "cloudflare": {"name": _text, "compatibility_date": _iso_date},
    "vercel": {"plan": _one_of("hobby", "pro", "enterprise")},
}
