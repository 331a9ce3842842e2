import json
import subprocess
import sys
from pathlib import Path


def nitro(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nitro_build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_local_prints_the_result_as_json(copy_fixture) -> None:
    root = copy_fixture("example")

    done = nitro(
        "task", "run", "echo:payload", "--local", "--payload", '{"a": [1, 2]}', cwd=root
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": {"a": [1, 2]}}


def test_run_local_failure_exits_1_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "nitro.config.toml").write_text("[experimental]\ntasks = true\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "fail.py").write_text(
        "from nitro_build import define_task\n\n"
        "@define_task\ndef fail(event):\n    raise ValueError('no database')\n"
    )

    done = nitro("task", "run", "fail", "--local", cwd=tmp_path)

    assert done.returncode == 1
    assert "task 'fail' failed: ValueError: no database" in done.stderr
    assert done.stdout == ""


def test_unknown_task_exits_1_naming_the_known_ones(copy_fixture) -> None:
    done = nitro("task", "run", "db:migrat", "--local", cwd=copy_fixture("example"))

    assert done.returncode == 1
    assert "task 'db:migrat' not found; known tasks: cms:update" in done.stderr


def test_payload_that_is_not_an_object_exits_2_and_runs_nothing(
    copy_fixture,
) -> None:
    root = copy_fixture("example")

    for payload, said in [("[1, 2]", "is a JSON list"), ("{oops", "not valid JSON")]:
        done = nitro(
            "task", "run", "db:migrate", "--local", "--payload", payload, cwd=root
        )

        assert done.returncode == 2
        assert said in done.stderr
        assert "running database migrations" not in done.stderr


def test_config_problems_exit_2(copy_fixture) -> None:
    done = nitro(
        "task",
        "run",
        "cms:update",
        "--local",
        cwd=copy_fixture("broken/unknown_schedule"),
    )

    assert done.returncode == 2
    assert "task 'cms:updte' does not exist" in done.stderr


def test_init_writes_a_project_that_runs(tmp_path: Path) -> None:
    done = nitro("init", "app", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    ran = nitro(
        "task",
        "run",
        "hello:world",
        "--local",
        "--payload",
        '{"name": "Ada"}',
        cwd=tmp_path / "app",
    )

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"greeting": "Hello, Ada!"}


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert nitro("init", ".", cwd=tmp_path).returncode == 0

    again = nitro("init", ".", cwd=tmp_path)

    assert again.returncode == 1
    assert "already has" in again.stderr


def test_task_list_local_shows_descriptions_and_schedules(copy_fixture) -> None:
    done = nitro("task", "list", "--local", cwd=copy_fixture("example"))

    assert done.returncode == 0, done.stderr
    assert "echo:payload  Returns the provided payload" in done.stdout
    assert "runs * * * * * (next " in done.stdout
