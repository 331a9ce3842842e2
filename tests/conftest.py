"""Shared helpers: fixture projects copied to a temporary folder."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


@pytest.fixture
def copy_fixture(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy a project from fixtures/ into tmp_path and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / Path(name).name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


@pytest.fixture(autouse=True)
def forget_task_modules() -> Iterator[None]:
    """Each test imports task files afresh, as a new process would."""
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("nitro_tasks", "tasks")):
            del sys.modules[name]
    sys.path[:] = path


class RedisServer:
    """A redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.folder = folder
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server; a first start moves to another port if the
        chosen one was taken in the meantime."""
        for _ in range(3):
            self._launch()
            if self._wait_until_ready():
                self.started = True
                return
            if self.started:
                break
            self.port = free_port()
        log = (self.folder / "redis.log").read_text(errors="replace")
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def _launch(self) -> None:
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_until_ready(self) -> bool:
        """True once our own process answers on the port (another process
        holding the port would answer too: compare process ids)."""
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self._answering_pid() == self.process.pid:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def _answering_pid(self) -> int | None:
        request = b"INFO server\r\n"
        if self.password:
            request = f"AUTH {self.password}\r\n".encode() + request
        with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
            sock.sendall(request)
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                reply += chunk
        line = reply.split(b"process_id:", 1)[1].split(b"\r\n", 1)[0]
        return int(line)


def tree_hash(folder: Path) -> str:
    """One digest over every path and file content under folder."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of its own for one test, stopped afterwards."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; scripts/test-tools.sh installs it")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
