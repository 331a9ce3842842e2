"""The ASGI types and JSON answers the task routes and the Vercel function share.

Standard library only: this ships in the server and Vercel outputs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body of every failure answer."""
    return {"error": True, "status": status, "message": message}


async def send_json(
    send: Send,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with a JSON body; values JSON cannot hold are sent as text."""
    await send_encoded(send, status, json.dumps(body, default=str).encode(), headers)


async def send_encoded(
    send: Send,
    status: int,
    data: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer with JSON that is already encoded."""
    fields = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"),
    ]
    fields += [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": data})
