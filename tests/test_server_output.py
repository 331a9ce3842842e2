"""The server output, run as deployed: copied away from the project and started
with the Python of a fresh virtual environment that has no packages at all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import FIXTURES, free_port

from nitro_build.build import build_project

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a new virtual environment without pip or packages."""
    folder = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)],
        check=True,
        timeout=60,
    )
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ticking project's server output, moved to a folder of its own."""
    project = tmp_path_factory.mktemp("project") / "ticking"
    shutil.copytree(FIXTURES / "build" / "ticking", project)
    build_project(project)

    target = tmp_path_factory.mktemp("deployed") / "output"
    shutil.copytree(project / ".output", target)
    shutil.rmtree(project)
    return target


def bare_environment(**extra: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "NITRO_", "VIRTUAL_ENV"))
    }
    return {**environment, **extra}


def run_command(
    python: Path, output: Path, *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "server/index.py", *arguments],
        cwd=output,
        env=bare_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )


class Server:
    """The output's server as a child process on a free loopback port."""

    def __init__(self, python: Path, output: Path, **environment: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = output.parent / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(python), "server/index.py"],
                cwd=output,
                env=bare_environment(
                    HOST="127.0.0.1", PORT=str(self.port), **environment
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_serving()

    def stop(self) -> int:
        """SIGTERM, then the exit code; kills it if it outlives the bound."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop() if self.process.poll() is None else None
        raise RuntimeError(f"the server did not start:\n{self.output()}")


@pytest.fixture
def start(bare_python: Path, deployed: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    def launch(**environment: str) -> Server:
        server = Server(bare_python, deployed, **environment)
        started.append(server)
        return server

    yield launch  # type: ignore[misc]
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=5)


def test_the_output_holds_the_runtime_and_not_the_build_tooling(deployed: Path) -> None:
    package = deployed / "server" / "nitro_build"

    assert (package / "__init__.py").is_file()
    assert (package / "runtime" / "server.py").is_file()
    assert not (package / "build").exists()
    assert not (package / "cli.py").exists()
    assert (deployed / "server" / "_vendor" / "uvicorn").is_dir()
    assert (deployed / "server" / "_vendor" / "croniter").is_dir()


def test_task_routes_are_off_without_a_token(start) -> None:  # type: ignore[no-untyped-def]
    server = start()

    response = httpx.get(f"{server.url}/_nitro/tasks/tick", timeout=5)

    assert response.status_code == 404
    assert "NITRO_TASKS_TOKEN" in response.json()["message"]
    assert server.stop() == 0


def test_task_routes_need_the_right_token(start) -> None:  # type: ignore[no-untyped-def]
    server = start(NITRO_TASKS_TOKEN="s3cret")
    route = f"{server.url}/_nitro/tasks/tick"

    wrong = httpx.post(route, headers={"Authorization": "Bearer nope"}, timeout=5)
    right = httpx.post(
        route,
        headers={"Authorization": "Bearer s3cret"},
        json={"payload": {"scheduledTime": 5}},
        timeout=5,
    )
    listing = httpx.get(
        f"{server.url}/_nitro/tasks",
        headers={"Authorization": "Bearer s3cret"},
        timeout=5,
    )

    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right.json() == {"scheduledTime": 5}
    assert listing.json()["scheduledTasks"][0]["cron"] == "* * * * * *"


def test_the_configured_app_is_served_beside_the_tasks(start) -> None:  # type: ignore[no-untyped-def]
    server = start()

    response = httpx.get(f"{server.url}/some/page", timeout=5)

    assert response.status_code == 200
    assert response.text == "hello from /some/page"


def test_an_every_second_schedule_fires_on_whole_seconds(  # type: ignore[no-untyped-def]
    start, tmp_path: Path
) -> None:
    ticks = tmp_path / "ticks"
    server = start(TICK_FILE=str(ticks))

    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.2)
        lines = ticks.read_text().splitlines() if ticks.exists() else []
    code = server.stop()

    assert len(lines) >= 3, server.output()
    times = [int(line.split()[0]) for line in lines]
    assert all(moment % 1000 == 0 for moment in times)
    assert times == sorted(set(times))
    assert all(line.endswith("* * * * * *") for line in lines)
    assert code == 0


def test_sigterm_stops_the_server_cleanly(start) -> None:  # type: ignore[no-untyped-def]
    server = start()

    code = server.stop()

    assert code == 0
    assert "Traceback" not in server.output()


def test_task_run_works_without_a_server(bare_python: Path, deployed: Path) -> None:
    done = run_command(
        bare_python,
        deployed,
        "task",
        "run",
        "tick",
        "--payload",
        '{"scheduledTime": 7}',
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"scheduledTime": 7}


def test_task_run_refuses_a_payload_that_is_not_an_object(
    bare_python: Path, deployed: Path
) -> None:
    done = run_command(bare_python, deployed, "task", "run", "tick", "--payload", "[1]")

    assert done.returncode == 2
    assert "not an object" in done.stderr
    assert done.stdout == ""


def test_task_run_of_an_unknown_task_exits_1(bare_python: Path, deployed: Path) -> None:
    done = run_command(bare_python, deployed, "task", "run", "nope")

    assert done.returncode == 1
    assert "task 'nope' not found; known tasks: tick" in done.stderr


def test_task_list_prints_tasks_and_schedules(
    bare_python: Path, deployed: Path
) -> None:
    text = run_command(bare_python, deployed, "task", "list")
    data = run_command(bare_python, deployed, "task", "list", "--json")

    assert text.returncode == 0, text.stderr
    assert "tick" in text.stdout
    assert "runs * * * * * *" in text.stdout
    listing = json.loads(data.stdout)
    assert listing["tasks"] == {
        "tick": {"description": "Append the scheduled time to the file TICK_FILE names"}
    }
    assert listing["scheduledTasks"][0]["tasks"] == ["tick"]


def test_start_up_imports_no_task_module(bare_python: Path, deployed: Path) -> None:
    probe = (
        "import sys, runpy; sys.argv = ['index.py', 'task', 'list'];"
        "\ntry: runpy.run_path('server/index.py', run_name='__main__')"
        "\nexcept SystemExit: pass"
        "\nprint(sorted(m for m in sys.modules if m.startswith('nitro_tasks')))"
    )
    done = subprocess.run(
        [str(bare_python), "-c", probe],
        cwd=deployed,
        env=bare_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
