"""``rill fake-server``: serve the fake OpenRouter of ``rill.fake`` on a local port.

The package is imported only when the command runs: a prompt never pays for it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

HELP = """Serve a fake OpenRouter on a local port until SIGINT or SIGTERM, for trying rill \
offline and testing scripts.

The first line on stdout is the base URL, e.g. http://127.0.0.1:8787/api/v1 (--port 0 picks a \
free port). Point rill at it with --base-url URL and OPENROUTER_API_KEY=sk-or-v1-test (any key \
with --no-auth), or any OpenAI SDK with base_url=URL.

A request for the model fake/NAME gets the canned scenario NAME; --scenario NAME answers every \
other model with it. Scenarios (--list-scenarios describes each): demo, echo, \
error-STATUS[-KIND], midstream-error, truncated, broken-json, silent-failure, slow, stall, \
keepalive, reasoning, tools, tool-use (a model that calls the tools it is offered), tool-loop, \
length, no-usage, split, huge, long[-N]; and hostile modes for \
hardening tests: hostile-endless-line[-SIZE] (a line that never ends), hostile-deep-content[-N], \
hostile-deep-reasoning[-N], hostile-deep-error[-N] (JSON nested N deep), \
hostile-type-FIELD[-object|-number] (id, model, provider or finish_reason of the wrong type), \
hostile-key-PLACE (the API key echoed in an error: code, metadata, message, malformed, \
midstream; or in GET /models: models), hostile-nan, hostile-infinity (usage numbers). Like \
OpenRouter it honours a request's models list (a fake/down... model is unavailable: the next one \
serves), its provider preferences and cache_control breakpoints (a repeated prefix reports \
cached tokens).

Exit status: 0 when stopped by a signal, 2 for an unknown scenario or an address that cannot \
be bound (a busy port)."""


class Persona(StrEnum):
    """The dialects ``rill.fake`` speaks (``rill.fake.PERSONAS``)."""

    openrouter = "openrouter"
    openai = "openai"
    llamacpp_legacy = "llamacpp-legacy"
    vllm_old = "vllm-old"
    ollama = "ollama"


def fake_server_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on; 0 picks a free one.", min=0)
    ] = 0,
    key: Annotated[
        str, typer.Option("--key", help="API key the server requires.")
    ] = "sk-or-v1-test",
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept any key, or none.")] = False,
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", metavar="NAME", help="Canned scenario for every request."),
    ] = None,
    persona: Annotated[
        Persona, typer.Option("--persona", help="Dialect of OpenAI-compatible server to speak.")
    ] = Persona.openrouter,
    log: Annotated[
        str | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Append a JSON line per chat request (text; files' type, size, sha256) to FILE.",
        ),
    ] = None,
    list_scenarios: Annotated[
        bool, typer.Option("--list-scenarios", help="Print the canned scenarios and exit.")
    ] = False,
) -> None:
    from rill.fake.cli import list_scenarios as catalogue
    from rill.fake.cli import serve

    if list_scenarios:
        from rill.commands.output import piped

        with piped():
            typer.echo(catalogue(), nl=False)
        return
    code = serve(
        host,
        port,
        key=key,
        require_auth=not no_auth,
        scenario=scenario,
        persona=persona.value,
        log=log,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("fake-server", help=HELP)(fake_server_command)
