"""The HTTP API, served by a real uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from nitro_build.runtime import TaskEntry, TaskRuntime
from nitro_build.runtime.http import MAX_BODY, ASGIApp, TasksApp, create_app
from nitro_build.runtime.server import bind_socket

TASKS = {
    "echo:payload": """
        from nitro_build import define_task

        @define_task(description="Returns the payload")
        def echo(event):
            return {"payload": event.payload, "context": event.context}
        """,
    "counted": """
        from pathlib import Path
        from nitro_build import define_task

        @define_task(description="Counts its runs in runs.txt")
        def counted(event):
            runs = Path(__file__).parent / "runs.txt"
            with runs.open("a") as file:
                file.write("run\\n")
            return {"runs": len(runs.read_text().splitlines())}
        """,
    "fail": """
        from nitro_build import define_task

        @define_task(description="Always fails")
        async def fail(event):
            raise ValueError("the database is gone")
        """,
    "odd": """
        import datetime
        from nitro_build import define_task

        @define_task
        def odd(event):
            return {"when": datetime.date(2026, 1, 2), "items": {1}}
        """,
    "broken": """
        from nitro_build import define_task

        def broken(event)
            return 1
        """,
}


@pytest.fixture
def runtime(tmp_path: Path) -> TaskRuntime:
    """Five task files, one broken, and a task declared without a handler."""
    entries = []
    for name, source in TASKS.items():
        file = tmp_path / (name.replace(":", "_") + ".py")
        file.write_text(textwrap.dedent(source))
        entries.append(TaskEntry(name, file=str(file)))
    entries.append(TaskEntry("todo", description="Not written yet"))
    return TaskRuntime(
        entries, root=tmp_path, schedules={"0 3 * * MON-FRI": ["echo:payload"]}
    )


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """Serve the app on uvicorn in a thread; yield its base URL."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped during startup"
            assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop in 10 s"


@pytest.fixture
def dev(runtime: TaskRuntime) -> Iterator[httpx.Client]:
    """A client of the dev-mode app."""
    with (
        served(create_app(runtime, dev=True)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def runs(runtime: TaskRuntime) -> int:
    file = runtime.root / "runs.txt"
    return len(file.read_text().splitlines()) if file.exists() else 0


class TestListing:
    def test_lists_tasks_and_schedules_with_next_run(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks")

        assert response.status_code == 200
        listing = response.json()
        assert listing["tasks"]["echo:payload"] == {
            "description": "Returns the payload"
        }
        assert listing["tasks"]["todo"] == {"description": "Not written yet"}
        [schedule] = listing["scheduledTasks"]
        assert schedule["cron"] == "0 3 * * MON-FRI"
        assert schedule["tasks"] == ["echo:payload"]
        assert schedule["next"].endswith("T03:00:00.000Z")

    def test_other_methods_are_405(self, dev: httpx.Client) -> None:
        response = dev.post("/_nitro/tasks")

        assert response.status_code == 405
        assert response.headers["allow"] == "GET"
        assert response.json()["status"] == 405


class TestRun:
    def test_query_parameters_are_the_payload(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/echo:payload?a=1&tag=x&tag=y&empty=")

        assert response.status_code == 200
        assert response.json()["payload"] == {"a": "1", "tag": ["x", "y"], "empty": ""}
        assert response.json()["context"] == {"source": "http"}

    def test_body_payload_goes_on_top_of_the_query(self, dev: httpx.Client) -> None:
        response = dev.post(
            "/_nitro/tasks/echo:payload?a=1&b=2",
            json={"payload": {"a": {"nested": True}, "c": [1, 2]}},
        )

        assert response.status_code == 200
        assert response.json()["payload"] == {
            "a": {"nested": True},
            "b": "2",
            "c": [1, 2],
        }

    def test_post_without_body_or_payload_key(self, dev: httpx.Client) -> None:
        empty = dev.post("/_nitro/tasks/echo:payload?a=1")
        other_keys = dev.post("/_nitro/tasks/echo:payload?a=1", json={"x": 1})

        assert empty.json()["payload"] == {"a": "1"}
        assert other_keys.json()["payload"] == {"a": "1"}

    def test_encoded_colon_in_the_name(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/echo%3Apayload?a=1")

        assert response.status_code == 200
        assert response.json()["payload"] == {"a": "1"}

    def test_result_that_is_not_json_uses_str(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/odd")

        assert response.status_code == 200
        assert response.json() == {"when": "2026-01-02", "items": "{1}"}

    @pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
    def test_other_methods_are_405(
        self, dev: httpx.Client, runtime: TaskRuntime, method: str
    ) -> None:
        response = dev.request(method, "/_nitro/tasks/counted")

        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert runs(runtime) == 0


class TestBadBodies:
    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "is a JSON array"),
            (b'{"payload": [1]}', "'payload' in the request body is a JSON array"),
            (b'{"payload": "x"}', "'payload' in the request body is a JSON string"),
            (b'{"payload": null}', "'payload' in the request body is a JSON null"),
            (b"\xff\xfe\x00", "not valid JSON"),
        ],
    )
    def test_400_and_the_task_does_not_run(
        self, dev: httpx.Client, runtime: TaskRuntime, body: bytes, expected: str
    ) -> None:
        response = dev.post("/_nitro/tasks/counted", content=body)

        assert response.status_code == 400
        assert response.json()["error"] is True
        assert response.json()["status"] == 400
        assert expected in response.json()["message"]
        assert runs(runtime) == 0

    def test_body_of_exactly_the_limit_is_read(
        self, dev: httpx.Client, runtime: TaskRuntime
    ) -> None:
        prefix, suffix = b'{"payload": {"pad": "', b'"}}'
        body = prefix + b"x" * (MAX_BODY - len(prefix) - len(suffix)) + suffix

        response = dev.post("/_nitro/tasks/counted", content=body)

        assert response.status_code == 200
        assert runs(runtime) == 1

    def test_body_over_the_limit_is_413(
        self, dev: httpx.Client, runtime: TaskRuntime
    ) -> None:
        response = dev.post("/_nitro/tasks/counted", content=b" " * (MAX_BODY + 1))

        assert response.status_code == 413
        assert "1 MiB" in response.json()["message"]
        assert runs(runtime) == 0

    def test_streamed_body_over_the_limit_is_413(self, runtime: TaskRuntime) -> None:
        app = create_app(runtime, dev=True)
        chunk = b" " * 65536
        sent = []

        async def body() -> Any:
            for _ in range(64):
                sent.append(len(chunk))
                yield chunk

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as client:
                return await client.post("/_nitro/tasks/counted", content=body())

        response = asyncio.run(call())

        assert response.status_code == 413
        assert runs(runtime) == 0
        assert sum(sent) <= MAX_BODY + len(chunk) * 2

    def test_bad_content_length_is_400(self, runtime: TaskRuntime) -> None:
        status, body = call_app(
            create_app(runtime, dev=True),
            "POST",
            "/_nitro/tasks/counted",
            headers=[(b"content-length", b"lots")],
        )

        assert status == 400
        assert "Content-Length 'lots'" in body["message"]
        assert runs(runtime) == 0


class TestFailures:
    def test_unknown_task_is_404(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/nope")

        assert response.status_code == 404
        body = response.json()
        assert body["error"] is True
        assert body["status"] == 404
        assert body["message"].startswith("task 'nope' not found; known tasks:")

    def test_task_without_handler_is_501(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/todo")

        assert response.status_code == 501
        assert "has no handler" in response.json()["message"]

    def test_failing_task_is_500_with_stack_in_dev(self, dev: httpx.Client) -> None:
        response = dev.post("/_nitro/tasks/fail", json={"payload": {}})

        assert response.status_code == 500
        body = response.json()
        assert body["message"] == (
            "task 'fail' failed: ValueError: the database is gone"
        )
        assert "Traceback" in body["stack"]
        assert "raise ValueError" in body["stack"]

    def test_broken_task_file_is_500_with_its_line(self, dev: httpx.Client) -> None:
        response = dev.get("/_nitro/tasks/broken")

        assert response.status_code == 500
        assert "broken.py:4: syntax error" in response.json()["message"]

    def test_production_never_sends_the_stack(self, runtime: TaskRuntime) -> None:
        app = create_app(runtime, token="s3cret")
        headers = {"Authorization": "Bearer s3cret"}
        with served(app) as url:
            failed = httpx.get(f"{url}/_nitro/tasks/fail", headers=headers)
            missing = httpx.get(f"{url}/_nitro/tasks/nope", headers=headers)

        assert failed.status_code == 500
        assert set(failed.json()) == {"error", "status", "message"}
        assert missing.status_code == 404
        assert "stack" not in missing.json()


class TestAccess:
    @pytest.mark.parametrize("client", [("203.0.113.7", 5000), ("10.0.0.2", 1), None])
    def test_dev_refuses_other_machines(
        self, runtime: TaskRuntime, client: tuple[str, int] | None
    ) -> None:
        app = create_app(runtime, dev=True)

        for path in ("/_nitro/tasks", "/_nitro/tasks/counted"):
            status, body = call_app(app, "GET", path, client=client)
            assert status == 403
            assert "loopback" in body["message"]
        assert runs(runtime) == 0

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"]
    )
    def test_dev_answers_loopback(self, runtime: TaskRuntime, host: str) -> None:
        status, _ = call_app(
            create_app(runtime, dev=True),
            "GET",
            "/_nitro/tasks/counted",
            client=(host, 4000),
        )

        assert status == 200

    def test_production_without_token_disables_task_routes(
        self, runtime: TaskRuntime
    ) -> None:
        with served(create_app(runtime)) as url:
            listing = httpx.get(f"{url}/_nitro/tasks")
            run = httpx.post(
                f"{url}/_nitro/tasks/counted", headers={"Authorization": "Bearer x"}
            )

        assert listing.status_code == 404
        assert "NITRO_TASKS_TOKEN" in listing.json()["message"]
        assert run.status_code == 404
        assert runs(runtime) == 0

    @pytest.mark.parametrize(
        "authorization",
        [None, "Bearer wrong", "Bearer s3cre", "Basic s3cret", "s3cret", "Bearer"],
    )
    def test_production_token_required(
        self, runtime: TaskRuntime, authorization: str | None
    ) -> None:
        headers = {"Authorization": authorization} if authorization else {}
        with served(create_app(runtime, token="s3cret")) as url:
            response = httpx.get(f"{url}/_nitro/tasks/counted", headers=headers)

        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert runs(runtime) == 0

    def test_production_with_token(self, runtime: TaskRuntime) -> None:
        with served(create_app(runtime, token="s3cret")) as url:
            listing = httpx.get(
                f"{url}/_nitro/tasks", headers={"Authorization": "Bearer s3cret"}
            )
            run = httpx.get(
                f"{url}/_nitro/tasks/counted",
                headers={"authorization": "bearer s3cret"},
            )

        assert listing.status_code == 200
        assert "counted" in listing.json()["tasks"]
        assert run.status_code == 200
        assert run.json() == {"runs": 1}


class TestOtherPaths:
    def test_404_json_without_an_app(self, dev: httpx.Client) -> None:
        response = dev.get("/hello")

        assert response.status_code == 404
        assert response.json() == {
            "error": True,
            "status": 404,
            "message": "no route for GET /hello",
        }

    def test_user_app_gets_other_paths_and_its_lifespan(
        self, runtime: TaskRuntime
    ) -> None:
        user = RecordingApp()
        scheduler = RecordingScheduler()
        app = create_app(runtime, dev=True, app=user, scheduler=scheduler, grace=3)

        with served(app) as url:
            hello = httpx.get(f"{url}/hello?x=1")
            tasks = httpx.get(f"{url}/_nitro/tasks/echo:payload")
            during = list(user.events) + list(scheduler.events)

        assert hello.status_code == 200
        assert hello.text == "hello from GET /hello, started=True"
        assert tasks.json()["payload"] == {}
        assert during == ["lifespan.startup", "start"]
        assert user.events == ["lifespan.startup", "lifespan.shutdown"]
        assert scheduler.events == ["start", "stop 3"]

    def test_app_without_lifespan_support(self, runtime: TaskRuntime) -> None:
        async def plain(scope: Any, receive: Any, send: Any) -> None:
            assert scope["type"] == "http"
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        with served(create_app(runtime, dev=True, app=plain)) as url:
            response = httpx.get(f"{url}/anything")

        assert response.status_code == 204

    def test_app_failing_startup_stops_the_server(self, runtime: TaskRuntime) -> None:
        async def failing(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})

        sock = bind_socket("127.0.0.1", 0)
        config = uvicorn.Config(
            create_app(runtime, app=failing), log_config=None, lifespan="on"
        )
        with pytest.raises(SystemExit):
            uvicorn.Server(config).run(sockets=[sock])
        sock.close()


class RecordingApp:
    """A small ASGI app that takes part in the lifespan."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.started = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    self.started = True
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        text = f"hello from {scope['method']} {scope['path']}, started={self.started}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text.encode()})


class RecordingScheduler:
    """Stands in for the scheduler: records when the app starts and stops it."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self, grace: float) -> None:
        self.events.append(f"stop {grace:g}")


def call_app(
    app: TasksApp,
    method: str,
    path: str,
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 4000),
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, Any]]:
    """One direct ASGI call, for what a socket cannot fake: the client address."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": headers or [],
        "client": client,
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
