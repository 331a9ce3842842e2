"""The cloudflare_module preset: wrangler.toml, the worker entry, wrangler itself.

The entry module is driven under CPython with the smallest stand-in for
Cloudflare's `workers` and `asgi` modules, in a separate interpreter started
without site-packages, so it can only use what the output carries. wrangler
(pinned, installed by scripts/wrangler-env.sh) checks the configuration
against its published schema and accepts the output in a dry-run deploy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from nitro_build.build import build_project
from nitro_build.build.emitters.cloudflare import worker_name
from nitro_build.errors import ConfigError

STANDIN_WORKERS = '''
"""Stand-in for Cloudflare's `workers` module: only what the entry uses."""


class WorkerEntrypoint:
    def __init__(self, ctx, env):
        self.ctx = ctx
        self.env = env


class Response:
    def __init__(self, body=None, status=200, headers=None):
        self.body = body
        self.status = status
        self.headers = dict(headers or {})
'''

STANDIN_ASGI = '''
"""Stand-in for Cloudflare's ASGI bridge: one buffered HTTP request."""

from urllib.parse import urlsplit

from workers import Response


async def fetch(app, request, env):
    url = urlsplit(request.url)
    scope = {"type": "http", "method": request.method, "path": url.path,
             "query_string": url.query.encode(), "headers": [], "env": env}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    return Response(body, status=sent[0]["status"])
'''

DRIVER = """
import asyncio, json, sys, threading

# As in Pyodide, where Cloudflare runs Python: no threads can start.
sys.platform = "emscripten"


def refuse_thread(self):
    raise RuntimeError("can't start new thread")


threading.Thread.start = refuse_thread
sys.path[:0] = [STANDINS, SOURCES]
import entry
from workers import Response


class Env:
    RECORDS = RECORDS
    GREETING = "hello"


class Context:
    def waitUntil(self, awaitable):
        pass


class Controller:
    type = "scheduled"

    def __init__(self, cron, scheduled_time):
        self.cron = cron
        self.scheduledTime = scheduled_time


class Request:
    method = "GET"
    url = "https://worker.example/hello?x=1"


async def main():
    env, ctx = Env(), Context()
    worker = entry.Default(ctx, env)
    fired = {}
    for cron, time, short in FIRES:
        controller = Controller(cron, time)
        try:
            if short:
                await worker.scheduled(controller)
            else:
                await worker.scheduled(controller, env, ctx)
            fired[cron] = "ok"
        except Exception as error:
            fired[cron] = f"{type(error).__name__}: {error}"
    response = await worker.fetch(Request())
    return {
        "fired": fired,
        "fetch": {"status": response.status, "body": response.body},
        "croniter": "croniter" in sys.modules,
    }


print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture(scope="session")
def wrangler() -> Path:
    """The folder with pinned `node` and `wrangler`, installed on first use."""
    script = REPO / "scripts" / "wrangler-env.sh"
    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(f"installing wrangler failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def build(copy_fixture: Callable[[str], Path], tmp_path: Path) -> Callable[..., Path]:
    """Copy a fixture project, build it for cloudflare_module, return the output."""

    def run(name: str = "cloudflare", folder: str | None = None) -> Path:
        project = copy_fixture(name)
        if folder is not None:
            project = project.rename(project.parent / folder)
        output = tmp_path / "output"
        build_project(project, preset="cloudflare_module", output=output)
        return output

    return run


def wrangler_toml(output: Path) -> dict[str, Any]:
    return tomllib.loads((output / "wrangler.toml").read_text(encoding="utf-8"))


def drive_worker(
    output: Path, tmp_path: Path, fires: list[tuple[str, int, bool]]
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Fire triggers at the built entry module in a bare interpreter."""
    standins = tmp_path / "standins"
    standins.mkdir()
    (standins / "workers.py").write_text(STANDIN_WORKERS, encoding="utf-8")
    (standins / "asgi.py").write_text(STANDIN_ASGI, encoding="utf-8")
    records = tmp_path / "records.jsonl"
    records.touch()

    preamble = (
        f"STANDINS = {str(standins)!r}\nSOURCES = {str(output / 'src')!r}\n"
        f"RECORDS = {str(records)!r}\nFIRES = {fires!r}\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", preamble + DRIVER],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = records.read_text(encoding="utf-8").splitlines()
    return (
        json.loads(result.stdout),
        [json.loads(line) for line in lines],
        result.stderr,
    )


class TestWranglerConfig:
    def test_the_worker_keys_and_translated_triggers(
        self, build: Callable[..., Path]
    ) -> None:
        config = wrangler_toml(build())

        assert config["main"] == "src/entry.py"
        assert config["compatibility_flags"] == ["python_workers", "nodejs_compat"]
        assert config["compatibility_date"] == "2025-12-01"
        assert config["triggers"] == {
            "crons": ["*/5 * * * *", "0 3 * * MON-FRI", "0 0 1 * *"]
        }
        assert config["vars"] == {"GREETING": "hello"}

    def test_the_name_defaults_to_the_project_folder_made_valid(
        self, build: Callable[..., Path]
    ) -> None:
        config = wrangler_toml(build(folder="My_Reports.App"))

        assert config["name"] == "my-reports-app"

    def test_the_config_table_sets_name_and_date(
        self, copy_fixture: Callable[[str], Path], tmp_path: Path
    ) -> None:
        project = copy_fixture("cloudflare")
        config_file = project / "nitro.config.toml"
        text = config_file.read_text(encoding="utf-8").replace(
            "[cloudflare]\n",
            '[cloudflare]\nname = "reports"\ncompatibility_date = "2026-01-05"\n',
        )
        config_file.write_text(text, encoding="utf-8")

        build_project(project, preset="cloudflare_module", output=tmp_path / "out")
        config = wrangler_toml(tmp_path / "out")

        assert config["name"] == "reports"
        assert config["compatibility_date"] == "2026-01-05"

    @pytest.mark.parametrize(
        ("line", "key"),
        [
            ('triggers = { crons = ["* * * * *"] }', "cloudflare.triggers"),
            ('main = "worker.py"', "cloudflare.main"),
            ('name = "Not Valid"', "cloudflare.name"),
        ],
    )
    def test_keys_the_build_owns_are_refused(
        self, copy_fixture: Callable[[str], Path], tmp_path: Path, line: str, key: str
    ) -> None:
        project = copy_fixture("cloudflare")
        config_file = project / "nitro.config.toml"
        text = config_file.read_text(encoding="utf-8")
        config_file.write_text(
            text.replace("[cloudflare]\n", f"[cloudflare]\n{line}\n"), encoding="utf-8"
        )

        with pytest.raises(ConfigError) as caught:
            build_project(project, preset="cloudflare_module", output=tmp_path / "o")

        assert key in str(caught.value)
        assert not (tmp_path / "o").exists()

    def test_more_triggers_than_the_free_plan_allows_warns(
        self, copy_fixture: Callable[[str], Path], tmp_path: Path
    ) -> None:
        project = copy_fixture("cloudflare")
        config_file = project / "nitro.config.toml"
        extra = "".join(f'"{minute} 1 * * *" = "report:plain"\n' for minute in range(4))
        text = config_file.read_text(encoding="utf-8")
        anchor = '"0 0 1 * *" = "report:plain"\n'
        config_file.write_text(text.replace(anchor, anchor + extra), encoding="utf-8")

        result = build_project(
            project, preset="cloudflare_module", output=tmp_path / "o"
        )

        assert len(wrangler_toml(tmp_path / "o")["triggers"]["crons"]) == 7
        warned = [w for w in result.warnings if "free plan" in w]
        assert len(warned) == 1 and warned[0].startswith("7 cron triggers"), warned

    def test_source_files_wrangler_leaves_behind_are_named(
        self, copy_fixture: Callable[[str], Path], tmp_path: Path
    ) -> None:
        project = copy_fixture("cloudflare")
        (project / "data").mkdir()
        (project / "data" / "prices.json").write_text("{}", encoding="utf-8")

        result = build_project(
            project, preset="cloudflare_module", output=tmp_path / "o"
        )

        warned = [w for w in result.warnings if "uploads only Python" in w]
        assert warned == [
            "wrangler uploads only Python modules, so 1 source file will not "
            "reach the worker: 'data/prices.json'; keep such data in a .py "
            "module, KV or R2"
        ]

    def test_matches_wranglers_published_schema(
        self, build: Callable[..., Path], wrangler: Path
    ) -> None:
        import jsonschema

        schema_file = wrangler.parent / "wrangler" / "config-schema.json"
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        config = wrangler_toml(build())

        jsonschema.validate(config, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**config, "crons": ["* * * * *"]}, schema)


class TestWorkerEntry:
    SCHEDULED_TIME = 1_767_582_000_000

    def test_each_trigger_runs_its_own_patterns_tasks(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        output = build()
        crons = wrangler_toml(output)["triggers"]["crons"]
        fires = [(cron, self.SCHEDULED_TIME + i, False) for i, cron in enumerate(crons)]

        result, records, _ = drive_worker(output, tmp_path, fires)

        by_cron = {(r["cron"], r["task"]): r for r in records}
        assert sorted(by_cron) == [
            ("*/5 * * * *", "report:plain"),
            ("*/5 * * * *", "report:record"),
            ("0 0 1 * *", "report:plain"),
            ("0 3 * * 1-5", "report:record"),
        ]
        record = by_cron["0 3 * * 1-5", "report:record"]
        assert record["payload"] == {"scheduledTime": self.SCHEDULED_TIME + 1}
        assert record["ctx"] == "Context"
        assert result["fired"]["0 3 * * MON-FRI"] == "ok"
        assert result["fired"]["0 0 1 * *"] == "ok"
        assert result["croniter"] is False

    def test_a_failing_task_spares_the_others_and_reaches_the_logs(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        fires = [("*/5 * * * *", self.SCHEDULED_TIME, False)]

        result, records, logs = drive_worker(build(), tmp_path, fires)

        assert sorted(r["task"] for r in records) == ["report:plain", "report:record"]
        failure = result["fired"]["*/5 * * * *"]
        assert failure.startswith("ScheduledTasksFailed: ")
        assert "report:fail" in failure and "the report server is down" in failure
        assert "task report:fail failed" in logs

    def test_the_platform_may_pass_only_the_controller(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        fires = [("0 0 1 * *", self.SCHEDULED_TIME, True)]

        result, records, _ = drive_worker(build(), tmp_path, fires)

        assert result["fired"] == {"0 0 1 * *": "ok"}
        assert [r["task"] for r in records] == ["report:plain"]

    def test_an_unknown_trigger_runs_nothing_and_warns(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        fires = [("0 3 * * 1-5", self.SCHEDULED_TIME, False)]

        result, records, logs = drive_worker(build(), tmp_path, fires)

        assert result["fired"] == {"0 3 * * 1-5": "ok"}
        assert records == []
        assert "WARNING" in logs and "'0 3 * * 1-5'" in logs

    def test_fetch_serves_the_app_through_the_asgi_bridge(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        result, _, _ = drive_worker(build(), tmp_path, [])

        assert result["fetch"]["status"] == 200
        body = json.loads(result["fetch"]["body"])
        assert body == {"path": "/hello", "greeting": "hello"}

    def test_fetch_without_an_app_is_404(
        self, build: Callable[..., Path], tmp_path: Path
    ) -> None:
        result, _, _ = drive_worker(build("example"), tmp_path, [])

        assert result["fetch"]["status"] == 404
        assert json.loads(result["fetch"]["body"])["status"] == 404


class TestWranglerDeploy:
    def test_a_dry_run_deploy_accepts_the_output(
        self, build: Callable[..., Path], wrangler: Path, tmp_path: Path
    ) -> None:
        output = build()
        dist = tmp_path / "dist"
        environment = {
            **os.environ,
            "PATH": f"{wrangler}{os.pathsep}{os.environ.get('PATH', '')}",
            "WRANGLER_SEND_METRICS": "false",
            "CI": "true",
            "HOME": str(tmp_path),
        }

        result = subprocess.run(
            [
                str(wrangler / "node"),
                str(wrangler / "wrangler"),
                "deploy",
                "--dry-run",
                "--outdir",
                str(dist),
            ],
            cwd=output,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert result.returncode == 0, result.stdout + result.stderr
        uploaded = {p.relative_to(dist).as_posix() for p in dist.rglob("*.py")}
        assert {
            "entry.py",
            "app/webapp.py",
            "app/tasks/report/record.py",
            "nitro_build/runtime/cloudflare.py",
            "nitro_build/runtime/runner.py",
        } <= uploaded
        assert "nitro_build/runtime/cron.py" not in uploaded
        assert (output / "python_modules" / "click" / "__init__.py").is_file()


def test_worker_names_follow_cloudflares_rules() -> None:
    assert worker_name("My_Project") == "my-project"
    assert worker_name("--reports--") == "reports"
    assert worker_name("日本") == "nitro-worker"
    assert len(worker_name("a" * 80)) == 63
