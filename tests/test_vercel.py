"""The vercel preset's function, run by Vercel's own Python launcher.

`vercel-runtime` (Python 3.12) imports the function the way the platform
does: through a bootstrap module that names the entrypoint, then its
`vc_init`, which reports the port it serves on over an IPC socket. The tests
play the platform: they own that socket, read the launcher's messages and
logs, and send real HTTP requests to the port, shaped like Vercel's cron calls.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FIXTURES, REPO, RedisServer

SECRET = "s3cret-for-tests-0123456789"
CRON_USER_AGENT = "vercel-cron/1.0"
# Makes the build list redis and embed a lock URL; the tests name their
# server through NITRO_LOCK_URL, which wins over it.
PLACEHOLDER_LOCK_URL = "redis://127.0.0.1:1/0"

# What Vercel's Python builder writes next to the function: it names the
# entrypoint for the launcher, then imports the launcher.
BOOTSTRAP = """\
import importlib
import os
import site
import sys

_here = os.path.dirname(__file__)

os.environ.update({
  "__VC_HANDLER_MODULE_NAME": "api.nitro",
  "__VC_HANDLER_ENTRYPOINT": "api/nitro.py",
  "__VC_HANDLER_ENTRYPOINT_ABS": os.path.join(_here, "api/nitro.py"),
  "__VC_HANDLER_VENDOR_DIR": "_vendor",
  "__VC_HANDLER_VARIABLE_NAME": "app",
})

_vendor = os.path.normpath(os.path.join(_here, "_vendor"))
if os.path.isdir(_vendor):
    site.addsitedir(_vendor)
    sys.path.insert(1, _vendor)
    importlib.invalidate_caches()

from vercel_runtime.vc_init import vc_handler
"""


@pytest.fixture(scope="session")
def vercel_python() -> str:
    """Python 3.12 with vercel-runtime, from scripts/vercel-runtime-env.sh."""
    script = REPO / "scripts" / "vercel-runtime-env.sh"
    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        message = f"vercel-runtime is not available:\n{result.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return result.stdout.strip().splitlines()[-1]


class Platform:
    """Plays Vercel's side of one function instance run by vc_init."""

    def __init__(self, python: str, root: Path, env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vc-ipc-"))
        self.ipc_path = self.folder / "ipc.sock"
        self.messages: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.request_id = 0

        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.ipc_path))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

        self.output = (self.folder / "output.txt").open("w+b")
        environment = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "VERCEL_IPC_PATH": str(self.ipc_path),
            "PYTHONPATH": "_vendor",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        self.process = subprocess.Popen(
            [python, "-c", "import vc__handler__python"],
            cwd=root,
            env=environment,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        started = self.wait_for("server-started", timeout=30)
        self.port = int(started["payload"]["httpPort"])
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def _read(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        buffer = b""
        with connection:
            while chunk := connection.recv(65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                with self.changed:
                    self.messages.extend(json.loads(raw) for raw in complete)
                    self.changed.notify_all()

    def wait_for(
        self, kind: str, timeout: float, request_id: int | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for message in self.messages:
                    context = message.get("payload", {}).get("context", {})
                    if message.get("type") == kind and (
                        request_id is None or context.get("requestId") == request_id
                    ):
                        return message
                if self.process.poll() is not None:
                    pytest.fail(f"vc_init exited early:\n{self.console()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no '{kind}' message from vc_init:\n{self.console()}")
                self.changed.wait(0.1)

    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """One invocation, with the internal headers the platform adds.

        Returns once the launcher has reported the invocation's end, so every
        log line of it has arrived.
        """
        self.request_id += 1
        sent = {
            "x-vercel-internal-invocation-id": f"inv-{self.request_id}",
            "x-vercel-internal-request-id": str(self.request_id),
            **(headers or {}),
        }
        response = self.client.request(method, path, headers=sent)
        self.wait_for("end", timeout=10, request_id=self.request_id)
        return response

    def cron(
        self, path: str, authorization: str | None = f"Bearer {SECRET}"
    ) -> httpx.Response:
        """A call shaped like Vercel's cron: GET, its user agent, the secret."""
        headers = {"user-agent": CRON_USER_AGENT}
        if authorization is not None:
            headers["authorization"] = authorization
        return self.call("GET", path, headers)

    def logs(self, request_id: int | None = None) -> str:
        """The log lines the function sent to the platform, decoded: those of
        one invocation (the latest by default), or all with request_id=0."""
        wanted = self.request_id if request_id is None else request_id
        with self.changed:
            found = [
                m
                for m in self.messages
                if m.get("type") == "log"
                and (wanted == 0 or m["payload"]["context"]["requestId"] == wanted)
            ]
        return "".join(
            base64.b64decode(m["payload"]["message"]).decode() + "\n" for m in found
        )

    def console(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.listener.close()
        self.output.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def build(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`nitro build --preset vercel` on a project, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "nitro_build", "build", "--preset", "vercel", *options],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def built_function(project: Path) -> Path:
    """Build the project and lay its output out as Vercel runs the function:
    the deployed folder, plus the bootstrap module Vercel's builder adds."""
    result = build(project)
    assert result.returncode == 0, result.stderr
    root = project.parent / f"{project.name}-deployed"
    shutil.copytree(project / ".output", root)
    (root / "vc__handler__python.py").write_text(BOOTSTRAP)
    return root


def set_schedule(project: Path, line: str) -> None:
    """Replace the every-minute schedule line of the example's config."""
    config = project / "nitro.config.toml"
    old = '"* * * * *" = ["cms:update"]'
    config.write_text(config.read_text().replace(old, line))


def add_failing_task(project: Path) -> None:
    (project / "tasks" / "boom.py").write_text(
        "from nitro_build import define_task\n\n\n"
        "@define_task(description='Always fails')\n"
        "def boom(event):\n"
        "    raise RuntimeError('boom went the task')\n"
    )
    set_schedule(project, '"* * * * *" = ["cms:update", "boom"]')


def set_lock_url(url: str) -> Any:
    """A change to a project: `[scheduler] lock_url` set to url."""

    def change(project: Path) -> None:
        config = project / "nitro.config.toml"
        text = config.read_text() + f'\n[scheduler]\nlock_url = "{url}"\n'
        config.write_text(text)

    return change


def add_app(project: Path) -> None:
    (project / "web.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    body = ('app saw ' + scope['method'] + ' ' + scope['path']).encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200,\n"
        "                'headers': [(b'content-type', b'text/plain')]})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    )
    config = project / "nitro.config.toml"
    config.write_text('app = "web:app"\n' + config.read_text())


@pytest.fixture
def example(copy_fixture: Any) -> Path:
    project: Path = copy_fixture("example")
    return project


@pytest.fixture(scope="module")
def deployed(
    vercel_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The example, built once, running under vc_init with CRON_SECRET set;
    shared by the tests that change neither the project nor the environment."""
    project = tmp_path_factory.mktemp("shared") / "example"
    shutil.copytree(FIXTURES / "example", project)
    platform = Platform(vercel_python, built_function(project), {"CRON_SECRET": SECRET})
    yield platform
    platform.stop()


@pytest.fixture
def start(vercel_python: str, example: Path) -> Iterator[Any]:
    """Build the example, start its function under vc_init; every started
    instance is stopped."""
    started: list[Platform] = []

    def launch(env: dict[str, str], *changes: Any) -> Platform:
        for change in changes:
            change(example)
        platform = Platform(vercel_python, built_function(example), env)
        started.append(platform)
        return platform

    yield launch
    for platform in started:
        platform.stop()


def test_cron_call_with_the_secret_runs_the_patterns_tasks(deployed: Platform) -> None:
    platform = deployed

    response = platform.cron("/api/_nitro/cron/0")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["cron"] == "* * * * *"
    assert list(body["tasks"]) == ["cms:update"]
    outcome = body["tasks"]["cms:update"]
    assert outcome["ok"] is True
    assert outcome["result"]["result"] == "Success"
    scheduled = outcome["result"]["scheduledTime"]
    assert scheduled == body["scheduledTime"]
    assert scheduled % 60_000 == 0
    assert 0 <= time.time() * 1000 - scheduled < 120_000
    assert f"CMS updated (scheduled for {scheduled})" in platform.logs()


def test_each_cron_path_runs_only_its_own_pattern(deployed: Platform) -> None:
    platform = deployed

    response = platform.cron("/api/_nitro/cron/1")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cron"] == "0 3 * * MON-FRI"
    assert list(body["tasks"]) == ["db:migrate"]
    scheduled = time.gmtime(body["scheduledTime"] / 1000)
    assert (scheduled.tm_hour, scheduled.tm_min, scheduled.tm_sec) == (3, 0, 0)
    assert scheduled.tm_wday < 5


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Bearer {SECRET}x", SECRET, f"Basic {SECRET}"],
)
def test_cron_call_without_the_right_secret_is_refused(
    deployed: Platform, authorization: str | None
) -> None:
    platform = deployed

    response = platform.cron("/api/_nitro/cron/0", authorization)

    assert response.status_code == 401
    assert response.json()["error"] is True
    assert "refused: wrong or missing token" in platform.logs()
    assert "task cms:update started" not in platform.logs()


def test_cron_call_with_the_secret_unset_says_to_set_it(start: Any) -> None:
    platform = start({})

    response = platform.cron("/api/_nitro/cron/0")

    assert response.status_code == 500
    assert "CRON_SECRET is not set" in response.json()["message"]
    assert "vercel env add CRON_SECRET" in response.json()["message"]
    assert "task cms:update started" not in platform.logs()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_cron_path_answers_get_only(deployed: Platform, method: str) -> None:
    platform = deployed

    response = platform.call(
        method, "/api/_nitro/cron/0", {"authorization": f"Bearer {SECRET}"}
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert "task cms:update started" not in platform.logs()


def test_a_failing_task_fails_the_call_after_the_others_ran(start: Any) -> None:
    platform = start({"CRON_SECRET": SECRET}, add_failing_task)

    response = platform.cron("/api/_nitro/cron/0")

    assert response.status_code == 500
    body = response.json()
    assert body["ok"] is False
    assert body["tasks"]["cms:update"]["ok"] is True
    assert body["tasks"]["boom"] == {
        "ok": False,
        "error": "RuntimeError: boom went the task",
        "durationMs": body["tasks"]["boom"]["durationMs"],
    }
    assert "task boom failed" in platform.logs()


def test_other_paths_get_404_without_an_app(deployed: Platform) -> None:
    platform = deployed

    response = platform.call("GET", "/api/nitro")

    assert response.status_code == 404


def test_other_paths_go_to_the_configured_app(start: Any) -> None:
    platform = start({"CRON_SECRET": SECRET}, add_app)

    response = platform.call("POST", "/anything/else")
    cron = platform.cron("/api/_nitro/cron/0")

    assert response.status_code == 200
    assert response.text == "app saw POST /anything/else"
    assert cron.status_code == 200
    assert cron.json()["tasks"]["cms:update"]["ok"] is True


class TestLockUrl:
    """Instances sharing one redis-server through NITRO_LOCK_URL."""

    @pytest.fixture
    def launch(self, vercel_python: str, example: Path) -> Iterator[Any]:
        """Start instances of one build of the example with a lock URL."""
        set_lock_url(PLACEHOLDER_LOCK_URL)(example)
        root = built_function(example)
        started: list[Platform] = []

        def instance(url: str) -> Platform:
            env = {"CRON_SECRET": SECRET, "NITRO_LOCK_URL": url}
            platform = Platform(vercel_python, root, env)
            started.append(platform)
            return platform

        yield instance
        for platform in started:
            platform.stop()

    def test_a_second_delivery_on_another_instance_skips_the_tick(
        self, launch: Any, redis_server: RedisServer
    ) -> None:
        first, second = launch(redis_server.url), launch(redis_server.url)

        ran = first.cron("/api/_nitro/cron/1")
        again = second.cron("/api/_nitro/cron/1")

        assert ran.status_code == 200, ran.text
        assert ran.json()["tasks"]["db:migrate"]["result"] == {"result": "Success"}
        assert again.status_code == 200, again.text
        assert again.json() == {
            "ok": True,
            "cron": "0 3 * * MON-FRI",
            "scheduledTime": ran.json()["scheduledTime"],
            "skipped": "this tick was already delivered and ran elsewhere",
            "tasks": {},
        }
        assert "running database migrations" in first.logs()
        assert "running database migrations" not in second.logs()
        assert "already delivered and ran elsewhere" in second.logs()

    def test_with_redis_unreachable_the_call_answers_503_and_runs_nothing(
        self, launch: Any, redis_server: RedisServer
    ) -> None:
        platform = launch(redis_server.url)
        redis_server.stop()

        response = platform.cron("/api/_nitro/cron/1")

        assert response.status_code == 503, response.text
        assert response.json()["error"] is True
        assert "is unreachable" in response.json()["message"]
        assert "no task ran" in platform.logs()
        assert "task db:migrate started" not in platform.logs()


class TestBuild:
    """What `nitro build --preset vercel` writes, read without running it."""

    def test_vercel_json_has_a_cron_job_and_a_rewrite_per_pattern(
        self, example: Path
    ) -> None:
        result = build(example)

        assert result.returncode == 0, result.stderr
        config = json.loads((example / ".output" / "vercel.json").read_text())
        assert config["crons"] == [
            {"path": "/api/_nitro/cron/0", "schedule": "* * * * *"},
            {"path": "/api/_nitro/cron/1", "schedule": "0 3 * * 1-5"},
        ]
        assert config["rewrites"] == [
            {"source": "/api/_nitro/cron/0", "destination": "/api/nitro"},
            {"source": "/api/_nitro/cron/1", "destination": "/api/nitro"},
        ]
        assert "functions" not in config

    def test_output_holds_one_function_and_what_vercel_installs(
        self, example: Path
    ) -> None:
        result = build(example)

        assert result.returncode == 0, result.stderr
        output = example / ".output"
        assert (output / ".python-version").read_text() == "3.12\n"
        requirements = (output / "requirements.txt").read_text().splitlines()
        assert any(line.startswith("croniter==") for line in requirements)
        # Vercel makes a function of every api/ file not under a name
        # starting with "_" or "."; it serves nothing under api/ as static.
        functions = [
            path.relative_to(output).as_posix()
            for path in (output / "api").rglob("*.py")
            if not any(
                part.startswith(("_", "."))
                for part in path.relative_to(output / "api").parts
            )
        ]
        assert functions == ["api/nitro.py"]
        assert (output / "api/_nitro/app/tasks/cms/update.py").is_file()
        assert not [p for p in output.iterdir() if p.suffix == ".py"]

    def test_app_gets_a_catch_all_rewrite_after_the_cron_paths(
        self, example: Path
    ) -> None:
        add_app(example)

        result = build(example)

        assert result.returncode == 0, result.stderr
        config = json.loads((example / ".output" / "vercel.json").read_text())
        assert config["rewrites"][-1] == {
            "source": "/(.*)",
            "destination": "/api/nitro",
        }
        assert len(config["rewrites"]) == 3

    def test_without_a_plan_a_more_than_daily_pattern_warns(
        self, example: Path
    ) -> None:
        result = build(example)

        assert result.returncode == 0, result.stderr
        assert "'* * * * *'" in result.stdout
        assert "Hobby" in result.stdout

    def test_hobby_plan_refuses_a_more_than_daily_pattern(self, example: Path) -> None:
        config = example / "nitro.config.toml"
        config.write_text(config.read_text() + '\n[vercel]\nplan = "hobby"\n')

        result = build(example)

        assert result.returncode == 2
        assert "'* * * * *'" in result.stderr
        assert "Hobby" in result.stderr
        assert not (example / ".output").exists()

    def test_hobby_plan_accepts_daily_patterns(self, example: Path) -> None:
        set_schedule(example, '"30 6 * * *" = ["cms:update"]')
        config = example / "nitro.config.toml"
        config.write_text(config.read_text() + '\n[vercel]\nplan = "hobby"\n')

        result = build(example)

        assert result.returncode == 0, result.stderr
        assert "Hobby" not in result.stdout

    def test_max_duration_sets_the_functions_time_limit(self, example: Path) -> None:
        config = example / "nitro.config.toml"
        config.write_text(config.read_text() + "\n[vercel]\nmax_duration = 300\n")

        result = build(example)

        assert result.returncode == 0, result.stderr
        written = json.loads((example / ".output" / "vercel.json").read_text())
        assert written["functions"] == {"api/nitro.py": {"maxDuration": 300}}

    @pytest.mark.parametrize(
        ("table", "key"),
        [("max_duration = 0", "max_duration"), ("crons = []", "crons")],
    )
    def test_bad_vercel_options_stop_the_build(
        self, example: Path, table: str, key: str
    ) -> None:
        config = example / "nitro.config.toml"
        config.write_text(config.read_text() + f"\n[vercel]\n{table}\n")

        result = build(example)

        assert result.returncode == 2
        assert f"vercel.{key}" in result.stderr
        assert not (example / ".output").exists()

    def test_seconds_and_names_vercel_cannot_read_stop_the_build(
        self, example: Path
    ) -> None:
        set_schedule(example, '"0 0 L * *" = ["cms:update"]')

        result = build(example)

        assert result.returncode == 2
        assert "'0 0 L * *'" in result.stderr

    def test_lock_url_lists_redis_and_goes_into_the_manifest(
        self, example: Path
    ) -> None:
        set_lock_url(PLACEHOLDER_LOCK_URL)(example)

        result = build(example)

        assert result.returncode == 0, result.stderr
        output = example / ".output"
        requirements = (output / "requirements.txt").read_text().splitlines()
        assert f"redis=={metadata.version('redis')}" in requirements
        function = (output / "api" / "nitro.py").read_text()
        assert f"'lock_url': '{PLACEHOLDER_LOCK_URL}'" in function

    def test_without_a_lock_url_redis_is_not_listed(self, example: Path) -> None:
        result = build(example)

        assert result.returncode == 0, result.stderr
        requirements = (example / ".output" / "requirements.txt").read_text()
        assert "redis" not in requirements

    @pytest.mark.parametrize(
        "url", ["redis://:hunter2@cache:6379/0", "redis://cache/0?password=hunter2"]
    )
    def test_a_lock_url_with_a_password_stops_the_build(
        self, example: Path, url: str
    ) -> None:
        set_lock_url(url)(example)

        result = build(example)

        assert result.returncode == 2
        assert "scheduler.lock_url" in result.stderr
        assert "NITRO_LOCK_URL" in result.stderr
        assert "hunter2" not in result.stderr
        assert not (example / ".output").exists()
