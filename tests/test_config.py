"""Tests for finding, parsing and checking the project's config file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from nitro_build.config import (
    CONFIG_FILES,
    Config,
    TaskConfig,
    find_config_file,
    load_config,
)
from nitro_build.errors import ConfigError

FORMS = Path(__file__).parent.parent / "fixtures" / "config" / "forms"


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(root: Path, **options: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(root, environ={}, **options)
    assert caught.value.exit_code == 2
    return [str(problem) for problem in caught.value.problems]


def only_problem(root: Path) -> str:
    problems = problems_of(root)
    assert len(problems) == 1, problems
    return problems[0]


# Every form


@pytest.mark.parametrize("form", ["toml", "yaml", "json", "py", "pyproject"])
def test_every_form_loads_the_same_config(form: str, tmp_path: Path) -> None:
    shutil.copytree(FORMS / form, tmp_path, dirs_exist_ok=True)

    config = load_config(tmp_path, environ={})

    assert config.file is not None
    assert config.file.parent == tmp_path.resolve()
    assert config.experimental_tasks is True
    assert config.scheduled_tasks == {
        "0 * * * *": ["cms:update"],
        "*/5 * * * *": ["db:migrate", "echo:payload"],
    }
    assert list(config.scheduled_tasks) == ["0 * * * *", "*/5 * * * *"]
    assert config.tasks == {
        "db:migrate": TaskConfig("myapp.jobs:migrate", "Run database migrations")
    }
    assert config.tasks_dir == tmp_path.resolve() / "jobs"
    assert config.src_dir == tmp_path.resolve()
    assert config.output_dir == tmp_path.resolve() / ".output"
    assert config.preset == "cloudflare_module"
    assert config.timezone == "Europe/Berlin"
    assert config.app == "myapp.main:app"
    assert config.scheduler == {"lock_url": "redis://localhost:6379/0"}
    assert config.preset_options == {
        "cloudflare": {"name": "myapp", "compatibility_date": "2024-09-23"},
        "vercel": {"plan": "hobby"},
    }


def test_yml_is_read_like_yaml(tmp_path: Path) -> None:
    shutil.copy(FORMS / "yaml" / "nitro.config.yaml", tmp_path / "nitro.config.yml")

    config = load_config(tmp_path, environ={})

    assert config.file == tmp_path.resolve() / "nitro.config.yml"
    assert config.scheduled_tasks["0 * * * *"] == ["cms:update"]


def test_no_config_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})

    assert config == Config(
        root=tmp_path.resolve(),
        file=None,
        tasks_dir=tmp_path.resolve() / "tasks",
        src_dir=tmp_path.resolve(),
        output_dir=tmp_path.resolve() / ".output",
        preset_options={"cloudflare": {}, "vercel": {}},
    )
    assert config.preset == "node-server"
    assert config.timezone == "UTC"
    assert config.experimental_tasks is False


def test_an_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.yaml", "# nothing yet\n")

    config = load_config(tmp_path, environ={})

    assert config.scheduled_tasks == {}
    assert config.file == tmp_path.resolve() / "nitro.config.yaml"


def test_pyproject_without_a_nitro_table_is_not_a_config(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "myapp"\n')

    assert find_config_file(tmp_path) is None
    assert load_config(tmp_path, environ={}).file is None


def test_a_python_config_may_import_its_neighbours(tmp_path: Path) -> None:
    write(tmp_path, "nitro_schedule_module.py", 'EVERY_HOUR = "0 * * * *"\n')
    write(
        tmp_path,
        "nitro.config.py",
        "from nitro_schedule_module import EVERY_HOUR\n"
        "config = {'scheduled_tasks': {EVERY_HOUR: 'cms:update'}}\n",
    )

    config = load_config(tmp_path, environ={})

    assert config.scheduled_tasks == {"0 * * * *": ["cms:update"]}


# Spellings and keys


def test_camel_case_spellings_are_aliases(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nitro.config.json",
        """{
          "experimental": {"tasks": true},
          "scheduledTasks": {"0 * * * *": "cms:update"},
          "tasksDir": "jobs",
          "srcDir": "src",
          "outputDir": "dist",
          "scheduler": {"lockUrl": "redis://localhost"}
        }""",
    )

    config = load_config(tmp_path, environ={})

    assert config.scheduled_tasks == {"0 * * * *": ["cms:update"]}
    assert config.tasks_dir == tmp_path.resolve() / "jobs"
    assert config.src_dir == tmp_path.resolve() / "src"
    assert config.output_dir == tmp_path.resolve() / "dist"
    assert config.scheduler == {"lock_url": "redis://localhost"}


def test_giving_both_spellings_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", 'tasks_dir = "a"\ntasksDir = "b"\n')

    assert only_problem(tmp_path) == (
        "nitro.config.toml: tasks_dir: is given twice, as 'tasks_dir' and "
        "'tasksDir'; keep one spelling"
    )


def test_unknown_key_names_the_nearest_known_key(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", '[sheduled_tasks]\n"0 * * * *" = "a"\n')

    assert only_problem(tmp_path) == (
        "nitro.config.toml: key 'sheduled_tasks' is not known; "
        "did you mean 'scheduled_tasks'?"
    )


def test_unknown_nested_key_is_named_with_its_full_path(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.yaml", "scheduler:\n  lockUri: redis://x\n")

    assert only_problem(tmp_path) == (
        "nitro.config.yaml: key 'scheduler.lockUri' is not known; "
        "did you mean 'scheduler.lockUrl'?"
    )


def test_unknown_key_with_nothing_near_lists_the_known_keys(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", "[experimental]\nzzz = true\n")

    assert only_problem(tmp_path) == (
        "nitro.config.toml: key 'experimental.zzz' is not known; "
        "the keys known here are 'experimental.tasks'"
    )


def test_pyproject_problems_name_the_table(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[tool.nitro]\npresett = 'vercel'\n")

    assert only_problem(tmp_path) == (
        "pyproject.toml [tool.nitro]: key 'presett' is not known; "
        "did you mean 'preset'?"
    )


def test_preset_tables_pass_their_own_keys_through(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nitro.config.toml",
        "[cloudflare]\n"
        "compatibility_date = 2024-09-23\n"
        'compatibility_flags = ["python_workers"]\n'
        "observability = { enabled = true }\n"
        "[vercel]\n"
        "someFutureKey = 1\n",
    )

    options = load_config(tmp_path, environ={}).preset_options

    assert options["cloudflare"] == {
        "compatibility_date": "2024-09-23",
        "compatibility_flags": ["python_workers"],
        "observability": {"enabled": True},
    }
    assert options["vercel"] == {"someFutureKey": 1}


# Values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[experimental]\ntasks = 'yes'\n",
            "nitro.config.toml: experimental.tasks: must be true or false, "
            "got 'yes' (text)",
        ),
        (
            "experimental = true\n",
            "nitro.config.toml: experimental: must be a table of keys and "
            "values, got True (a boolean)",
        ),
        (
            "tasks_dir = 5\n",
            "nitro.config.toml: tasks_dir: must be a folder path relative to "
            "the project, got 5 (an integer)",
        ),
        (
            "timezone = 'Europe/Berln'\n",
            "nitro.config.toml: timezone: time zone 'Europe/Berln' is not known; "
            "use an IANA zone name such as 'UTC' or 'Europe/Berlin'",
        ),
        (
            "app = 'myapp'\n",
            "nitro.config.toml: app: must be 'module:attr', such as "
            "'myapp.main:app', got 'myapp' (text)",
        ),
        (
            "[scheduler]\nlock_url = 'localhost'\n",
            "nitro.config.toml: scheduler.lock_url: must be a URL such as "
            "'redis://localhost:6379/0', got 'localhost' (text)",
        ),
        (
            "[vercel]\nplan = 'free'\n",
            "nitro.config.toml: vercel.plan: must be one of 'hobby', 'pro', "
            "'enterprise', got 'free' (text)",
        ),
        (
            "[cloudflare]\nname = ''\n",
            "nitro.config.toml: cloudflare.name: must be non-empty text, got '' (text)",
        ),
        (
            "[cloudflare]\ncompatibility_date = '23/09/2024'\n",
            "nitro.config.toml: cloudflare.compatibility_date: must be a date "
            "written YYYY-MM-DD like '2024-09-23', got '23/09/2024' (text)",
        ),
        (
            "[tasks.'db:migrate']\nhandlr = 'x:y'\n",
            "nitro.config.toml: key 'tasks.'db:migrate'.handlr' is not known; "
            "did you mean 'tasks.'db:migrate'.handler'?",
        ),
        (
            "[tasks]\n'db:migrate' = 'x:y'\n",
            "nitro.config.toml: tasks.'db:migrate': must be a table of keys and "
            "values, got 'x:y' (text)",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_named(
    text: str, expected: str, tmp_path: Path
) -> None:
    write(tmp_path, "nitro.config.toml", text)

    assert only_problem(tmp_path) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ("[]", "lists no tasks; name at least one or remove the pattern"),
        ('["a", "a"]', "names task 'a' twice; list each task once"),
        ('["a", 3]', "task names must be non-empty text, got 3 (an integer)"),
        ("{ a = 1 }", "must be a task name or a list of them, got {'a': 1} (a table)"),
    ],
)
def test_bad_task_lists_are_named(names: str, expected: str, tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", f'[scheduled_tasks]\n"0 * * * *" = {names}\n')

    assert only_problem(tmp_path) == (
        f"nitro.config.toml: scheduled_tasks.'0 * * * *': {expected}"
    )


@pytest.mark.parametrize("pattern", ["61 * * * *", "not a cron", "* * *"])
def test_an_invalid_pattern_is_named(pattern: str, tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", f'[scheduled_tasks]\n"{pattern}" = "a"\n')

    problem = only_problem(tmp_path)

    where = f"nitro.config.toml: scheduled_tasks.'{pattern}': "
    assert problem.startswith(where)
    assert problem[len(where) :].strip()
    assert problem.count(pattern) == 1


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    write(
        tmp_path,
        "nitro.config.toml",
        "preset = 3\n"
        "timezone = 'Nowhere/Town'\n"
        "sheduled_tasks = {}\n"
        "[scheduled_tasks]\n"
        "'61 * * * *' = 'a'\n"
        "'0 * * * *' = []\n"
        "[vercel]\n"
        "plan = 'free'\n",
    )

    problems = problems_of(tmp_path)

    assert len(problems) == 6, problems
    assert problems[0] == (
        "nitro.config.toml: preset: must be non-empty text, got 3 (an integer)"
    )
    assert problems[1].startswith("nitro.config.toml: timezone: time zone ")
    assert problems[2] == (
        "nitro.config.toml: key 'sheduled_tasks' is not known; "
        "did you mean 'scheduled_tasks'?"
    )
    assert problems[3].startswith("nitro.config.toml: scheduled_tasks.'61 * * * *': ")
    assert problems[4] == (
        "nitro.config.toml: scheduled_tasks.'0 * * * *': lists no tasks; "
        "name at least one or remove the pattern"
    )
    assert problems[5].startswith("nitro.config.toml: vercel.plan: must be one of ")


def test_scheduled_names_are_not_matched_against_tasks_here(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", '[scheduled_tasks]\n"@daily" = "nope"\n')

    assert load_config(tmp_path, environ={}).scheduled_tasks == {"@daily": ["nope"]}


# Files


def test_two_config_files_are_an_error_naming_both(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", "")
    write(tmp_path, "pyproject.toml", "[tool.nitro]\n")

    problem = only_problem(tmp_path)

    assert "'nitro.config.toml', 'pyproject.toml'" in problem
    assert "keep one of them" in problem


def test_every_config_file_name_is_found(tmp_path: Path) -> None:
    for name in CONFIG_FILES:
        write(tmp_path, name, "")

    with pytest.raises(ConfigError) as caught:
        find_config_file(tmp_path)

    for name in CONFIG_FILES:
        assert f"'{name}'" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "nitro.config.toml",
            'preset = "a"\ntimezone = \n',
            "nitro.config.toml:2:12: is not a valid TOML config: Invalid value",
        ),
        (
            "nitro.config.yaml",
            "preset: a\nscheduled_tasks: [\n",
            "nitro.config.yaml:3:1: is not a valid YAML config: expected the "
            "node content",
        ),
        (
            "nitro.config.json",
            '{\n  "preset": "a",\n}\n',
            "nitro.config.json:3:1: is not a valid JSON config: Expecting "
            "property name",
        ),
        (
            "nitro.config.py",
            "config = {}\nreturn config\n",
            "nitro.config.py:2:1: is not a valid Python config: 'return' outside "
            "function",
        ),
        (
            "nitro.config.py",
            "import os\n\nconfig = {'preset': os.environ['NITRO_NO_SUCH_VAR']}\n",
            "nitro.config.py:3: is not a valid Python config: raised KeyError: "
            "'NITRO_NO_SUCH_VAR'",
        ),
    ],
)
def test_a_file_that_cannot_be_parsed_names_the_line(
    name: str, text: str, expected: str, tmp_path: Path
) -> None:
    write(tmp_path, name, text)

    assert only_problem(tmp_path).startswith(expected)


def test_a_python_config_without_config_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.py", "settings = {}\n")

    assert only_problem(tmp_path) == (
        "nitro.config.py: defines no module-level 'config'; assign the settings "
        "dict to it, e.g. config = {'experimental': {'tasks': True}}"
    )


def test_a_config_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.json", "[1, 2]\n")

    assert only_problem(tmp_path) == (
        "nitro.config.json: must be a table of keys and values, got [1, 2] (a list)"
    )


# Presets and paths


def test_preset_precedence(tmp_path: Path) -> None:
    write(tmp_path, "nitro.config.toml", 'preset = "vercel"\n')
    environ = {"NITRO_PRESET": "bun"}

    assert load_config(tmp_path, environ={}).preset == "vercel"
    assert load_config(tmp_path, environ=environ).preset == "bun"
    assert load_config(tmp_path, preset="deno-server", environ=environ).preset == (
        "deno-server"
    )
    assert load_config(tmp_path / "..", environ={}).preset == "node-server"


def test_preset_comes_from_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NITRO_PRESET", "bun")

    assert load_config(tmp_path).preset == "bun"


def test_paths_are_resolved_against_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    write(
        tmp_path,
        "nitro.config.toml",
        f'tasks_dir = "src/../jobs"\nsrc_dir = "src"\noutput_dir = "{outside}"\n',
    )

    config = load_config(tmp_path / "." / "", environ={})

    assert config.root == tmp_path.resolve()
    assert config.tasks_dir == tmp_path.resolve() / "jobs"
    assert config.src_dir == tmp_path.resolve() / "src"
    assert config.output_dir == outside.resolve()


# The opt-in flag


def test_a_tasks_folder_without_the_flag_earns_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "nitro.config.toml", 'preset = "bun"\n')
    (tmp_path / "tasks").mkdir()

    with caplog.at_level(logging.WARNING, logger="nitro_build.config"):
        config = load_config(tmp_path, environ={})

    assert config.experimental_tasks is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "tasks are not scanned" in record.getMessage()
    assert "'experimental.tasks = true'" in record.getMessage()
    assert "nitro.config.toml" in record.getMessage()


def test_no_warning_when_tasks_are_enabled_or_absent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "nitro.config.toml", "experimental.tasks = true\n")
    (tmp_path / "tasks").mkdir()
    other = tmp_path / "other"
    other.mkdir()

    with caplog.at_level(logging.WARNING, logger="nitro_build.config"):
        assert load_config(tmp_path, environ={}).experimental_tasks is True
        assert load_config(other, environ={}).experimental_tasks is False

    assert caplog.records == []


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        (None, "create nitro.config.toml with the line 'experimental.tasks = true'"),
        ("nitro.config.yml", "add 'experimental: {tasks: true}' to nitro.config.yml"),
        ("nitro.config.json", """add '"experimental": {"tasks": true}' to"""),
        ("nitro.config.py", "add 'experimental': {'tasks': True} to the config dict"),
        ("pyproject.toml", "under '[tool.nitro.experimental]' in pyproject.toml"),
    ],
)
def test_the_warning_says_how_to_enable_tasks_in_each_form(
    name: str | None, hint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    content = {"pyproject.toml": "[tool.nitro]\n", "nitro.config.py": "config = {}\n"}
    if name:
        write(tmp_path, name, content.get(name, "{}\n"))
    (tmp_path / "tasks").mkdir()

    with caplog.at_level(logging.WARNING, logger="nitro_build.config"):
        load_config(tmp_path, environ={})

    assert hint in caplog.records[0].getMessage()


def test_top_level_key_under_a_table_says_where_it_belongs(tmp_path: Path) -> None:
    (tmp_path / "nitro.config.toml").write_text(
        '[experimental]\ntasks = true\ntimezone = "UTC"\n'
    )

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    assert str(caught.value.problems[0]) == (
        "nitro.config.toml: key 'experimental.timezone' is not known inside "
        "'experimental', but 'timezone' is a top-level key; move it above the "
        "first [table] header (in TOML, keys after a header belong to that table)"
    )


@pytest.mark.parametrize(
    "url", ["redis://:hunter2@cache:6379/0", "redis://cache/0?password=hunter2"]
)
def test_a_lock_url_with_a_password_is_refused_without_showing_it(
    tmp_path: Path, url: str
) -> None:
    (tmp_path / "nitro.config.toml").write_text(f'[scheduler]\nlock_url = "{url}"\n')

    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    [problem] = caught.value.problems
    assert problem.where == "nitro.config.toml: scheduler.lock_url"
    assert "set the full URL as NITRO_LOCK_URL" in problem.message
    assert "hunter2" not in str(caught.value)
