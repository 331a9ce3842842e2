"""`nitro dev` end to end: a real dev server process and the `nitro task` client.

Every process is started with a deadline and killed in a fixture finalizer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "fixtures" / "example"
DEADLINE = 20.0

SLOW_TASK = """
    import time
    from pathlib import Path

    from nitro_build import define_task

    ROOT = Path(__file__).resolve().parents[2]


    @define_task(description="Counts its runs, then waits for the release file")
    def wait(event):
        runs = ROOT / "runs.txt"
        with runs.open("a") as file:
            file.write("run\\n")
        deadline = time.monotonic() + 15
        while not (ROOT / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"runs": len(runs.read_text().splitlines())}
    """

FAILING_TASK = """
    from nitro_build import define_task


    @define_task(description="Always fails")
    def always(event):
        raise RuntimeError("the mail server refused the login")
    """


def nitro(
    root: Path, *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the command line once, bounded."""
    return subprocess.run(
        [sys.executable, "-m", "nitro_build", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class DevServer:
    """One `nitro dev` process on a project folder."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.port = free_port()
        self.log = root.parent / f"dev-{self.port}.log"
        self.info = root / ".nitro" / "dev.json"
        command = [sys.executable, "-m", "nitro_build", "--root", str(root)]
        self.process = subprocess.Popen(
            [*command, *extra, "dev", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.process.poll() is None, f"nitro dev exited:\n{self.output()}"
            try:
                info: dict[str, Any] = json.loads(self.info.read_text())
            except (OSError, ValueError):
                return None
            return info

        return wait_for(ready, "nitro dev to write .nitro/dev.json")  # type: ignore[no-any-return]

    def output(self) -> str:
        return self.log.read_text()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=DEADLINE)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DEADLINE)


def make_project(folder: Path) -> Path:
    """The example project plus a slow task and a failing one."""
    root = folder / "example"
    shutil.copytree(EXAMPLE, root)
    for name, source in {"slow/wait": SLOW_TASK, "mail/always": FAILING_TASK}.items():
        file = root / "tasks" / f"{name}.py"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., DevServer]]:
    """Start `nitro dev` on a fresh project copy; every server stops at the end."""
    servers: list[DevServer] = []

    def start(*extra: str, root: Path | None = None) -> DevServer:
        server = DevServer(root or make_project(tmp_path), *extra)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One dev server, logging debug detail, for the tests that change nothing."""
    server = DevServer(make_project(tmp_path_factory.mktemp("dev")), "--verbose")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class TestServing:
    def test_dev_json_names_the_server(self, dev: DevServer) -> None:
        info = json.loads(dev.info.read_text())

        assert info == {
            "pid": dev.process.pid,
            "host": "127.0.0.1",
            "port": dev.port,
            "url": dev.url,
        }

    def test_listing_over_http(self, dev: DevServer) -> None:
        response = dev.get("/_nitro/tasks")

        assert response.status_code == 200
        listing = response.json()
        assert set(listing["tasks"]) == {
            "cms:update",
            "db:migrate",
            "echo:payload",
            "mail:always",
            "slow:wait",
        }
        assert listing["tasks"]["db:migrate"] == {
            "description": "Run database migrations"
        }
        crons = {s["cron"]: s["tasks"] for s in listing["scheduledTasks"]}
        assert crons == {"* * * * *": ["cms:update"], "0 3 * * MON-FRI": ["db:migrate"]}

    def test_task_list(self, dev: DevServer) -> None:
        result = nitro(dev.root, "task", "list")

        assert result.returncode == 0, result.stderr
        assert "echo:payload  Returns the provided payload" in result.stdout
        assert "runs 0 3 * * MON-FRI (next " in result.stdout

    def test_task_list_json(self, dev: DevServer) -> None:
        result = nitro(dev.root, "task", "list", "--json")

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == dev.get("/_nitro/tasks").json()

    def test_task_run(self, dev: DevServer) -> None:
        result = nitro(dev.root, "task", "run", "echo:payload", "--payload", '{"a":1}')

        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"result": {"a": 1}}

    def test_failing_task_exits_1_with_its_message(self, dev: DevServer) -> None:
        result = nitro(dev.root, "task", "run", "mail:always")

        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == (
            "Error: task 'mail:always' failed: RuntimeError: the mail server "
            "refused the login\n"
        )

    def test_unknown_task_exits_1(self, dev: DevServer) -> None:
        result = nitro(dev.root, "task", "run", "nope")

        assert result.returncode == 1
        assert result.stderr.startswith("Error: task 'nope' not found; known tasks:")

    @pytest.mark.parametrize("payload", ["{nope", "[1, 2]", '"text"'])
    def test_bad_payload_exits_2_and_runs_nothing(
        self, dev: DevServer, payload: str
    ) -> None:
        started = dev.output().count("task slow:wait started")

        result = nitro(dev.root, "task", "run", "slow:wait", "--payload", payload)

        assert result.returncode == 2
        assert "--payload" in result.stderr
        assert dev.output().count("task slow:wait started") == started

    def test_parallel_runs_share_one_run(self, dev: DevServer) -> None:
        command = [sys.executable, "-m", "nitro_build", "--root", str(dev.root)]
        runs = [
            subprocess.Popen(
                [*command, "task", "run", "slow:wait", "--payload", f'{{"n": {n}}}'],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(5)
        ]
        try:
            # The run holds until released, so all five calls are in flight.
            wait_for(
                lambda: dev.output().count("task slow:wait already running") == 4,
                "four calls to join the running slow:wait",
            )
            (dev.root / "release").touch()
            outputs = [run.communicate(timeout=DEADLINE) for run in runs]
        finally:
            for run in runs:
                run.kill()
                run.wait(DEADLINE)

        assert [run.returncode for run in runs] == [0] * 5, outputs
        assert [json.loads(out) for out, _ in outputs] == [{"runs": 1}] * 5
        assert (dev.root / "runs.txt").read_text() == "run\n"


class TestReload:
    def test_editing_a_task_file_reloads_it(
        self, start_dev: Callable[..., DevServer]
    ) -> None:
        server = start_dev()
        task = server.root / "tasks" / "echo" / "payload.py"
        assert server.get("/_nitro/tasks/echo:payload?a=1").json() == {
            "result": {"a": "1"}
        }

        task.write_text(task.read_text().replace('{"result": ', '{"edited": '))

        wait_for(
            lambda: (
                server.get("/_nitro/tasks/echo:payload?a=1").json()
                == {"edited": {"a": "1"}}
            ),
            "the edited task to be served",
        )

    def test_new_task_file_and_config_change_are_picked_up(
        self, start_dev: Callable[..., DevServer]
    ) -> None:
        server = start_dev()
        new = server.root / "tasks" / "hello" / "world.py"
        new.parent.mkdir()
        new.write_text(
            "from nitro_build import define_task\n\n"
            "task = define_task(description='Greets', run=lambda event: 'hi')\n"
        )
        config = server.root / "nitro.config.toml"
        config.write_text(config.read_text() + '"0 12 * * *" = ["hello:world"]\n')

        def listed() -> bool:
            listing = server.get("/_nitro/tasks").json()
            crons = {s["cron"]: s["tasks"] for s in listing["scheduledTasks"]}
            return crons.get("0 12 * * *") == ["hello:world"]

        wait_for(listed, "the new task and schedule in the listing")
        assert server.get("/_nitro/tasks/hello:world").json() == "hi"

    def test_broken_task_file_is_logged_and_the_rest_keep_serving(
        self, start_dev: Callable[..., DevServer]
    ) -> None:
        server = start_dev()
        task = server.root / "tasks" / "echo" / "payload.py"

        task.write_text("from nitro_build import define_task\n\ndef echo(event\n")

        wait_for(
            lambda: "tasks/echo/payload.py:3: syntax error" in server.output(),
            "the broken file to be logged with its line",
        )
        wait_for(
            lambda: server.get("/_nitro/tasks/echo:payload").status_code == 500,
            "the broken task to answer 500",
        )
        broken = server.get("/_nitro/tasks/echo:payload").json()
        assert "payload.py:3: syntax error" in broken["message"]
        assert server.get("/_nitro/tasks/db:migrate").json() == {"result": "Success"}
        assert "echo:payload" in server.get("/_nitro/tasks").json()["tasks"]
        result = nitro(server.root, "task", "run", "echo:payload")
        assert result.returncode == 1
        assert "payload.py:3: syntax error" in result.stderr

    def test_broken_config_keeps_the_previous_tasks(
        self, start_dev: Callable[..., DevServer]
    ) -> None:
        server = start_dev()
        config = server.root / "nitro.config.toml"
        config.write_text(config.read_text() + "unknown_key = 1\n")

        wait_for(
            lambda: "not reloaded; the previous tasks serve" in server.output(),
            "the config problem to be logged",
        )

        assert "unknown_key" in server.output()
        assert server.get("/_nitro/tasks/db:migrate").json() == {"result": "Success"}

    def test_broken_task_file_at_start(
        self, tmp_path: Path, start_dev: Callable[..., DevServer]
    ) -> None:
        root = make_project(tmp_path)
        (root / "tasks" / "db" / "migrate.py").write_text(
            "from nitro_build import define_task\n\nraise ImportError('no driver')\n"
        )

        server = start_dev(root=root)

        assert "tasks/db/migrate.py:3: import failed" in server.output()
        assert server.get("/_nitro/tasks/db:migrate").status_code == 500
        assert server.get("/_nitro/tasks/echo:payload").status_code == 200


class TestLifecycle:
    @pytest.mark.parametrize(
        ("number", "code"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 0)]
    )
    def test_signal_stops_gracefully_and_removes_dev_json(
        self, start_dev: Callable[..., DevServer], number: int, code: int
    ) -> None:
        server = start_dev()

        server.process.send_signal(number)
        server.process.wait(DEADLINE)

        assert not server.info.exists()
        assert server.process.returncode == code
        assert "scheduler stopped" in server.output()
        assert "Traceback" not in server.output()

    def test_port_in_use_is_one_line(self, tmp_path: Path) -> None:
        root = make_project(tmp_path)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            result = nitro(root, "dev", "--port", str(port))

        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        assert errors == [
            f"Error: port {port} on 127.0.0.1 is already in use; stop the process "
            f"using it or pick another port with 'nitro dev --port {port + 1}'"
        ]
        assert not (root / ".nitro" / "dev.json").exists()


class TestNoServer:
    def message(self, root: Path) -> str:
        return (
            f"Error: no dev server is running for {root}; start one with "
            "'nitro dev' or add --local to run in this process\n"
        )

    def test_without_dev_json(self, tmp_path: Path) -> None:
        root = make_project(tmp_path)

        listing = nitro(root, "task", "list")
        run = nitro(root, "task", "run", "echo:payload")

        assert (listing.returncode, listing.stderr) == (1, self.message(root))
        assert (run.returncode, run.stderr) == (1, self.message(root))

    def test_stale_dev_json_with_a_dead_pid(self, tmp_path: Path) -> None:
        root = make_project(tmp_path)
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        write_info(root, int(gone.stdout), free_port())

        result = nitro(root, "task", "run", "echo:payload")

        assert (result.returncode, result.stderr) == (1, self.message(root))

    def test_live_pid_but_nothing_listening(self, tmp_path: Path) -> None:
        root = make_project(tmp_path)
        write_info(root, os.getpid(), free_port())

        result = nitro(root, "task", "list", "--json")

        assert (result.returncode, result.stderr) == (1, self.message(root))


def write_info(root: Path, pid: int, port: int) -> None:
    info = root / ".nitro" / "dev.json"
    info.parent.mkdir()
    url = f"http://127.0.0.1:{port}"
    info.write_text(
        json.dumps({"pid": pid, "host": "127.0.0.1", "port": port, "url": url})
    )


class TestUserApp:
    def test_app_is_served_beside_the_task_routes(
        self, tmp_path: Path, start_dev: Callable[..., DevServer]
    ) -> None:
        root = tmp_path / "ticking"
        shutil.copytree(REPO / "fixtures" / "build" / "ticking", root)

        server = start_dev(root=root)

        page = server.get("/reports/today")
        assert page.status_code == 200
        assert page.text == "hello from /reports/today"
        assert set(server.get("/_nitro/tasks").json()["tasks"]) == {"tick"}

    def test_every_second_schedule_fires_in_dev(
        self, tmp_path: Path, start_dev: Callable[..., DevServer]
    ) -> None:
        root = tmp_path / "ticking"
        shutil.copytree(REPO / "fixtures" / "build" / "ticking", root)

        server = start_dev(root=root)

        fired = wait_for(
            lambda: server.output().count("task tick finished") >= 2,
            "two ticks of '* * * * * *'",
        )
        assert fired


class TestHelperReload:
    def test_editing_a_helper_beside_the_tasks_reloads_the_tasks_using_it(
        self, tmp_path: Path, start_dev: Callable[..., DevServer]
    ) -> None:
        root = make_project(tmp_path)
        (root / "shared").mkdir()
        (root / "shared" / "greeting.py").write_text("WORD = 'hello'\n")
        installed = root / ".venv" / "lib" / "site-packages"
        installed.mkdir(parents=True)
        (installed / "installed_once.py").write_text(
            "import itertools\nIMPORTS = itertools.count(1)\nFIRST = next(IMPORTS)\n"
        )
        (root / "tasks" / "greet.py").write_text(
            "import sys\n"
            "from pathlib import Path\n\n"
            "from nitro_build import define_task\n"
            "from shared import greeting\n\n"
            "sys.path.insert(0, str(Path(__file__).parents[1] / '.venv/lib/"
            "site-packages'))\n"
            "import installed_once\n\n"
            "task = define_task(\n"
            "    run=lambda event: [greeting.WORD, id(installed_once)]\n"
            ")\n"
        )
        server = start_dev(root=root)
        word, package = server.get("/_nitro/tasks/greet").json()
        assert word == "hello"

        (root / "shared" / "greeting.py").write_text("WORD = 'bonjour'\n")

        wait_for(
            lambda: server.get("/_nitro/tasks/greet").json()[0] == "bonjour",
            "the edited helper to be used",
        )
        assert server.get("/_nitro/tasks/greet").json()[1] == package
