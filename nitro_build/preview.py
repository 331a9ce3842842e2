"""`nitro preview`: run the built server output as it would run deployed.

The output's `nitro.json` holds its preview command (`python server/index.py`);
it runs as a child process with this Python, in its own session, and SIGINT,
SIGTERM and SIGHUP sent to `nitro preview` are passed on to it, so the server
shuts down gracefully and its exit code becomes the command's.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from .config import load_config
from .errors import NitroError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE = 15.0


def run_preview(root: Path, host: str | None = None, port: int | None = None) -> int:
    """Run the server output of the project at root; returns its exit code."""
    config = load_config(Path(root))
    output = config.output_dir
    command = preview_command(output)

    environment = dict(os.environ)
    if host is not None:
        environment["HOST"] = host
    if port is not None:
        environment["PORT"] = str(port)

    return run_forwarding_signals(command, output, environment)


def preview_command(output: Path) -> list[str]:
    """The output's preview command, run with the current Python."""
    info_file = output / "nitro.json"
    if not info_file.is_file():
        marker = output / ".nitro-output"
        if marker.is_file():
            preset = json.loads(marker.read_text(encoding="utf-8")).get("preset")
            raise NitroError(
                f"the output '{output}' was built for preset '{preset}', which "
                "has no local server; build a server preset (node-server, bun, "
                "deno-server) to preview it, or use the platform's own tool"
            )
        raise NitroError(
            f"no built server output in '{output}'; run 'nitro build' first"
        )

    info = json.loads(info_file.read_text(encoding="utf-8"))
    words = shlex.split(info.get("commands", {}).get("preview", ""))
    if len(words) < 2 or words[0] != "python":
        raise NitroError(
            f"'{info_file}' has no preview command of the form 'python FILE'; "
            "rebuild the output with 'nitro build'"
        )
    return [sys.executable, *words[1:]]


def run_forwarding_signals(
    command: list[str], folder: Path, environment: dict[str, str]
) -> int:
    """Run a child until it exits, passing stop signals on to it."""
    child = subprocess.Popen(
        command, cwd=folder, env=environment, start_new_session=True
    )

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        code = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 128 - code if code < 0 else code
