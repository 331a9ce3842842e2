from pathlib import Path

import pytest

from nitro_build.errors import ConfigError
from nitro_build.project import check_tasks, load_project


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


ENABLED = "[experimental]\ntasks = true\n"
TASK = "from nitro_build import define_task\n\ntask = define_task(run=lambda e: 1)\n"


def test_example_project_loads_its_three_tasks(copy_fixture) -> None:
    project = load_project(copy_fixture("example"))

    assert list(project.entries) == ["cms:update", "db:migrate", "echo:payload"]
    assert check_tasks(project) == []
    assert project.runtime().description("echo:payload") == (
        "Returns the provided payload"
    )


def test_config_handler_wins_over_a_scanned_file(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "nitro.config.toml": ENABLED
            + '[tasks."db:migrate"]\nhandler = "helpers:migrate"\n'
            + 'description = "From config"\n',
            "tasks/db/migrate.py": TASK,
            "helpers.py": "def migrate(event):\n    return 'from handler'\n",
        },
    )

    project = load_project(root)
    runtime = project.runtime()

    assert project.entries["db:migrate"].handler == "helpers:migrate"
    assert runtime.run_sync("db:migrate") == "from handler"
    assert runtime.description("db:migrate") == "From config"


def test_config_task_without_handler_or_file_is_not_implemented(tmp_path: Path) -> None:
    root = write(tmp_path, {"nitro.config.toml": ENABLED + '[tasks."later"]\n'})

    project = load_project(root)

    from nitro_build.runtime import TaskNotImplemented

    with pytest.raises(TaskNotImplemented):
        project.runtime().run_sync("later")


def test_tasks_are_off_without_the_flag(tmp_path: Path) -> None:
    root = write(tmp_path, {"nitro.config.toml": "", "tasks/a.py": TASK})

    assert load_project(root).entries == {}


def test_schedules_without_the_flag_are_an_error(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {"nitro.config.toml": '[scheduled_tasks]\n"* * * * *" = ["a"]\n'},
    )

    with pytest.raises(ConfigError, match=r"set 'experimental\.tasks = true'"):
        load_project(root)


def test_scheduled_name_without_a_task_is_an_error(copy_fixture) -> None:
    with pytest.raises(ConfigError) as caught:
        load_project(copy_fixture("broken/unknown_schedule"))

    assert str(caught.value.problems[0]) == (
        "nitro.config.toml: scheduled_tasks.'* * * * *': task 'cms:updte' does "
        "not exist; did you mean 'cms:update'?"
    )
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("fixture", "where", "message"),
    [
        ("syntax_error", "tasks/bad.py:5", "syntax error: expected ':'"),
        ("two_tasks", "tasks/double.py:5", "defines 2 tasks (lines 3, 5)"),
        ("no_task", "tasks/empty.py:1", "defines no task"),
        (
            "import_error",
            "tasks/needs.py:3",
            "import failed: ModuleNotFoundError: No module named "
            "'a_module_that_does_not_exist'",
        ),
        (
            "name_mismatch",
            "tasks/db/migrate.py:3",
            "meta name 'db:migrations' disagrees with the task name 'db:migrate'",
        ),
    ],
)
def test_broken_task_files_name_file_and_line(
    copy_fixture, fixture: str, where: str, message: str
) -> None:
    project = load_project(copy_fixture(f"broken/{fixture}"))

    [problem] = check_tasks(project)

    assert problem.where == where
    assert problem.message.startswith(message)


def test_all_broken_files_are_reported_together(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "nitro.config.toml": ENABLED,
            "tasks/a.py": "def (:\n",
            "tasks/b.py": "x = 1\n",
            "tasks/c.py": TASK,
        },
    )

    problems = check_tasks(load_project(root))

    assert [p.where.split(":")[0] for p in problems] == ["tasks/a.py", "tasks/b.py"]


def test_task_files_can_import_project_modules(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "nitro.config.toml": ENABLED,
            "shared/util.py": "VALUE = 42\n",
            "tasks/answer.py": "from nitro_build import define_task\n"
            "from shared.util import VALUE\n\n"
            "task = define_task(run=lambda e: VALUE)\n",
        },
    )

    assert load_project(root).runtime().run_sync("answer") == 42
