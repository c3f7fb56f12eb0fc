"""The ASGI application of ``rill serve``: routes, the token and size guard, CORS, the page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rill.serve import chats, gateway
from rill.serve.context import MAX_BODY, ServeContext, error_body


def _json(
    status: int, message: str, kind: str, extra: list[tuple[bytes, bytes]]
) -> dict[str, object]:
    return {
        "status": status,
        "body": json.dumps(error_body(message, kind)).encode(),
        "headers": [(b"content-type", b"application/json"), *extra],
    }


class Guard:
    """Every request: the bearer token when one is set (401 without it), a declared body over
    ``MAX_BODY`` refused before it is read (413), and ``nosniff`` on every answer."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = None
        if self.token is not None:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                refusal = _json(
                    401,
                    "a bearer token is required: Authorization: Bearer TOKEN",
                    "authentication_error",
                    [(b"www-authenticate", b"Bearer")],
                )
        declared = headers.get(b"content-length", b"")
        if refusal is None and declared.isdigit() and int(declared) > MAX_BODY:
            refusal = _json(
                413,
                f"the request body is larger than {MAX_BODY} bytes",
                "invalid_request_error",
                [(b"connection", b"close")],
            )
        if refusal is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": refusal["status"],
                    "headers": refusal["headers"],
                }
            )
            await send({"type": "http.response.body", "body": refusal["body"]})
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def load_page() -> tuple[bytes, str]:
    """The page, and its Content-Security-Policy: only its own inline script may run, it may
    connect only to this server, and it loads nothing from anywhere."""
    html = resources.files("rill.serve").joinpath("page.html").read_text("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode("utf-8"), policy


def build_app(ctx: ServeContext, *, cors: str | None = None) -> Starlette:
    page, policy = load_page()

    async def index(request: HTTPRequest) -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"content-security-policy": policy, "cache-control": "no-store"},
        )

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/v1/chat/completions", gateway.chat_completions, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/api/chats", chats.list_chats, methods=["GET"]),
        Route("/api/chats/{chat_id}", chats.show_chat, methods=["GET"]),
        Route("/api/chats/{chat_id}/messages/stream", chats.message_stream, methods=["POST"]),
        Route("/api/usage", chats.usage, methods=["GET"]),
        Route("/api/requests", chats.list_requests, methods=["GET"]),
        Route("/api/requests/{request_id}", chats.cancel_request, methods=["DELETE"]),
    ]
    middleware = []
    if cors:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=[cors],
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type"],
                expose_headers=["x-rill-request"],
            )
        )
    middleware.append(Middleware(Guard, token=ctx.token))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.rill = ctx
    return app
