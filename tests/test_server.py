"""`serve`, as a built server output runs it: a real process on a free port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import free_port

from nitro_build.runtime.server import PortInUse, ServerError, bind_socket, load_app

DEADLINE = 20.0

SERVE = """
    import sys
    from nitro_build.runtime import TaskEntry, TaskRuntime
    from nitro_build.runtime.server import serve

    root, port = sys.argv[1], int(sys.argv[2])
    runtime = TaskRuntime(
        [TaskEntry("hello", file="hello.py")],
        root=root,
        schedules={"* * * * * *": ["hello"]},
    )
    serve(runtime, host="127.0.0.1", port=port, token="s3cret", app="shop:app")
    """

HELLO = """
    from nitro_build import define_task

    @define_task(description="Greets")
    def hello(event):
        return {"hello": event.payload.get("name", "world")}
    """

SITE = """
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the site"})
    """


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """A production server with a token, a site app and an every-second task."""
    for name, source in {"serve.py": SERVE, "hello.py": HELLO, "shop.py": SITE}.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "serve.py"), str(tmp_path), str(port)],
        stderr=log.open("w"),
        stdout=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE
        while "Application startup complete" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield url, process, log
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(DEADLINE)


def test_serves_tasks_app_and_scheduler_then_stops_on_sigterm(
    server: tuple[str, subprocess.Popen[str], Path],
) -> None:
    url, process, log = server
    token = {"Authorization": "Bearer s3cret"}

    run = httpx.get(f"{url}/_nitro/tasks/hello?name=you", headers=token)
    refused = httpx.get(f"{url}/_nitro/tasks/hello")
    site = httpx.get(f"{url}/index.html")
    deadline = time.monotonic() + DEADLINE
    while "pattern '* * * * * *' fired" not in log.read_text():
        assert time.monotonic() < deadline, "the scheduler never ran hello"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(DEADLINE)

    assert run.json() == {"hello": "you"}
    assert refused.status_code == 401
    assert site.text == "the site"
    assert "scheduler stopped" in log.read_text()
    assert process.returncode == -signal.SIGTERM


def test_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already"):
            bind_socket("127.0.0.1", port)


def test_load_app_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "site_without.py").write_text("application = None\n")

    with pytest.raises(ServerError, match="has no ASGI app named 'app'"):
        load_app("site_without:app", tmp_path)
    with pytest.raises(ServerError, match="cannot import module 'nowhere_at_all'"):
        load_app("nowhere_at_all:app", tmp_path)
