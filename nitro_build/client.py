"""Talk to the running dev server: what `nitro task list` and `task run` use.

`nitro dev` writes `.nitro/dev.json` with its pid and address; `DevClient.find`
reads it and checks the server is alive. Requests go over plain `urllib`,
never through a proxy, since the server is on this machine.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import NitroError

DEV_FILE = Path(".nitro") / "dev.json"
LISTING_TIMEOUT = 30.0


class DevClient:
    """A client of one running dev server."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def find(cls, root: Path) -> DevClient:
        """The dev server of the project at `root`; none running is an error."""
        root = Path(root).resolve()
        try:
            info = json.loads((root / DEV_FILE).read_text())
            pid, url = int(info["pid"]), str(info["url"])
        except (OSError, ValueError, KeyError, TypeError):
            raise not_running(root) from None
        if pid <= 0 or not _alive(pid):
            raise not_running(root)
        return cls(root, url)

    def list_tasks(self) -> dict[str, Any]:
        """The listing the server's `GET /_nitro/tasks` answers."""
        listing: dict[str, Any] = self._request("GET", "/_nitro/tasks", None)
        return listing

    def run_task(self, name: str, payload: dict[str, Any]) -> Any:
        """Run a task on the server and return its result."""
        path = "/_nitro/tasks/" + quote(name, safe="")
        return self._request("POST", path, {"payload": payload}, timeout=None)

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float | None = LISTING_TIMEOUT,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise NitroError(_failure_message(error)) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                raise not_running(self.root) from None
            raise NitroError(
                f"cannot reach the dev server at {self.url}: {error.reason}"
            ) from None
        except ConnectionError:
            raise NitroError(
                f"the dev server at {self.url} closed the connection; see its log"
            ) from None


def not_running(root: Path) -> NitroError:
    return NitroError(
        f"no dev server is running for {root}; start one with 'nitro dev' or "
        "add --local to run in this process"
    )


def _failure_message(error: urllib.error.HTTPError) -> str:
    """The server's error message, or the status line if it sent none."""
    try:
        body = json.loads(error.read())
        return str(body["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"the dev server answered {error.code} {error.reason}"


def _alive(pid: int) -> bool:
    if sys.platform == "win32":
        # os.kill with signal 0 would terminate the process on Windows; the
        # request itself finds out whether the server is there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
