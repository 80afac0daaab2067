"""API-key authentication: an ASGI middleware in front of every endpoint but the probes.

A key is sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Every configured key is
compared with `hmac.compare_digest` (all of them, so the time taken does not tell which one
nearly matched). Keys are never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class APIKeyMiddleware:
    """Answer 401 to HTTP requests without a valid key; probes are always open."""

    def __init__(self, app: ASGIApp, keys: Iterable[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys if key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.authorized(scope):
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(
            {
                "error": "unauthorized",
                "message": "missing or invalid API key: send `Authorization: Bearer KEY` "
                "or `X-API-Key: KEY`",
                "request_id": None,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="featurehub"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def authorized(self, scope: Scope) -> bool:
        presented: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    presented = token.strip()
            elif name == b"x-api-key":
                presented = value.strip()
        if not presented:
            return False
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        return matched
