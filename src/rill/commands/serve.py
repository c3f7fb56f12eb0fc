"""``rill serve``: the parameter list, the checks made before binding, and the wiring.

The server stack (Starlette, uvicorn) is an optional extra: without it, the command says how to
install it and exits 3. Nothing here is imported by any other command.
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from rill.commands import options as opt
from rill.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from rill.config.settings import Settings

HELP = """Serve the streaming core over HTTP until SIGINT or SIGTERM: an OpenAI-compatible \
gateway (POST /v1/chat/completions, GET /v1/models) for any app or SDK, rill's own event \
stream (POST /api/chats/{id|new}/messages/stream, exactly as -f sse), the history and usage as \
JSON (GET /api/chats, /api/chats/{id}, /api/usage), the active requests (GET /api/requests, \
DELETE /api/requests/{id} cancels one) and a chat page at /.

Every request is recorded in history like a command run and counted by rill usage. The first \
line on stdout is the server's URL (--port 0 picks a free port)."""

EPILOG = (
    "Loopback only unless --host says otherwise; any other address needs --token (or "
    "RILL_SERVE_TOKEN), and then every request needs Authorization: Bearer TOKEN. The API key "
    "never reaches a client. Needs the serve extra: pip install 'rill-cli[serve]'. Exit status: "
    "130/143 when stopped by SIGINT/SIGTERM, 2 for an address that cannot be used, 3 without "
    "the serve extra."
)

INSTALL = "rill serve needs its server stack: pip install 'rill-cli[serve]'"


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", metavar="PORT", help="Port; 0 picks a free one.", min=0, max=65535),
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="RILL_SERVE_TOKEN",
            show_envvar=False,
            help="Require Authorization: Bearer TOKEN (env RILL_SERVE_TOKEN).",
        ),
    ] = None,
    cors: Annotated[
        str | None,
        typer.Option("--cors", metavar="ORIGIN", help="Allow this browser origin (CORS)."),
    ] = None,
    model: opt.Model = None,
    system: opt.System = None,
    temperature: opt.Temperature = None,
    max_tokens: opt.MaxTokens = None,
    base_url: opt.BaseUrl = None,
    timeout: opt.Timeout = None,
    first_token_timeout: opt.FirstTokenTimeout = None,
    total_timeout: opt.TotalTimeout = None,
    retries: opt.Retries = None,
    no_history: opt.NoHistory = False,
) -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL) from None
    from rill.config.settings import resolve_settings
    from rill.serve.server import bind, is_loopback

    token = token or None
    if not is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} is not a loopback address: give --token TOKEN (or RILL_SERVE_TOKEN) "
            "so that only clients with it are answered"
        )
    settings = resolve_settings(
        opt.setting_flags(ctx.params), warn=lambda m: sys.stderr.write(f"rill: {m}\n")
    )
    settings.check_transport()
    sock = bind(host, port)
    raise typer.Exit(_serve(settings, sock, token=token, cors=cors, history=not no_history))


def _serve(
    settings: Settings, sock: socket.socket, *, token: str | None, cors: str | None, history: bool
) -> int:
    from rill.history import HistoryStore
    from rill.serve.app import build_app
    from rill.serve.context import MAX_STREAMS, ServeContext
    from rill.serve.server import run
    from rill.stream.client import make_http_client

    def warn(message: str) -> None:
        sys.stderr.write(f"rill: {message}\n")

    store = None
    if history and settings.history:
        store = HistoryStore(
            settings.paths.history_dir,
            settings.history_format,  # type: ignore[arg-type]
            warn=warn,
        )
    http = make_http_client(settings, connections=MAX_STREAMS)
    ctx = ServeContext(settings, http, store, token=token)
    app = build_app(ctx, cors=cors)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    def ready() -> None:
        sys.stdout.write(f"http://{shown}:{port}/\n")
        sys.stdout.flush()
        if sys.stderr.isatty():
            sys.stderr.write("rill: serving until Ctrl-C\n")

    def close() -> None:
        ctx.pools.close()
        http.close()

    return run(app, sock, ctx.registry, ready=ready, close=close)


def register(app: typer.Typer) -> None:
    app.command("serve", help=HELP, epilog=EPILOG)(serve_command)
