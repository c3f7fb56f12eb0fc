"""The command line of the fake server: ``python -m rill.fake`` (``rill fake-server`` calls
``serve`` with the same options).

The first line on stdout is the base URL (``http://127.0.0.1:PORT/api/v1``), so a script can
start the server with ``--port 0`` and read where it listens. SIGINT and SIGTERM stop it quietly
(exit 0). Bad options, an unknown scenario or an address that cannot be bound (a busy port) are
one ``rill:`` line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import textwrap
import threading
from typing import IO, Any, cast, get_args

from rill.env import isatty
from rill.fake.canned import CATALOGUE, canned_scenario
from rill.fake.common import DEFAULT_API_KEY, PERSONAS, Persona
from rill.fake.server import FakeOpenRouter

EXIT_STOPPED = 0
EXIT_USAGE = 2
DESCRIPTION = (
    "Serve a fake OpenRouter API (chat completions, models, generation, key, credits) on a "
    "local port until interrupted, for trying rill offline and testing scripts."
)
USAGE_NOTES = """\
The first line on stdout is the base URL, e.g. http://127.0.0.1:8787/api/v1 (with --port 0 the
port is a free one). Point rill at it with --base-url URL (or RILL_BASE_URL) and the key
sk-or-v1-test (OPENROUTER_API_KEY; any key with --no-auth), or any OpenAI SDK with
base_url=URL. SIGINT or SIGTERM stops it (exit 0); bad options, an unknown scenario or a busy
port exit 2.

Scenarios: a request for the model fake/NAME gets scenario NAME; --scenario NAME makes it the
answer to every other model too. NAME is one of:
"""


class UsageFailure(Exception):
    """A bad option value; the message is the one line shown."""


def list_scenarios(width: int = 100) -> str:
    """The canned scenarios, one entry each, wrapped to ``width``."""
    lines = []
    for name, text in CATALOGUE:
        lines.append(f"  {name}")
        lines += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line instead of argparse's usage block
        raise UsageFailure(f"{message} (see {self.prog} --help)")


def build_parser(prog: str = "python -m rill.fake") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=DESCRIPTION,
        epilog=USAGE_NOTES + list_scenarios(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--key", default=DEFAULT_API_KEY, help="API key to require")
    auth.add_argument("--no-auth", action="store_true", help="accept any key, or none")
    parser.add_argument("--scenario", metavar="NAME", help="canned scenario for every request")
    parser.add_argument("--persona", choices=PERSONAS, default="openrouter")
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="append one JSON line per chat request (messages' text, attached files' type, "
        "size and sha256) to FILE; - for stderr",
    )
    parser.add_argument(
        "--list-scenarios", action="store_true", help="print the canned scenarios and exit"
    )
    return parser


def scenario_name(name: str | None) -> str | None:
    """``slow`` → ``fake/slow``; raises ``UsageFailure`` for an unknown scenario."""
    if name is None:
        return None
    full = name if name.startswith("fake/") else f"fake/{name}"
    if canned_scenario(full, {}) is None:
        raise UsageFailure(f"unknown scenario: {name} (see --list-scenarios)")
    return full


def persona_of(name: str) -> Persona:
    for persona in get_args(Persona):
        if persona == name:
            return cast(Persona, persona)
    raise UsageFailure(f"unknown persona: {name} (one of {', '.join(PERSONAS)})")


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    key: str = DEFAULT_API_KEY,
    require_auth: bool = True,
    scenario: str | None = None,
    persona: str = "openrouter",
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    log: str | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; the exit code. The URL is the first line on ``stdout``."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        name = scenario_name(scenario)
        dialect = persona_of(persona)
    except UsageFailure as exc:
        err.write(f"rill: {exc}\n")
        return EXIT_USAGE
    stop = threading.Event()
    previous = _on_signals(lambda signum, frame: stop.set())
    server = FakeOpenRouter(
        host, port, api_key=key, require_auth=require_auth, persona=dialect, default_scenario=name
    )
    try:
        server.log = _logger(log, err)
    except OSError as exc:
        err.write(f"rill: cannot open the log {log}: {exc.strerror or exc}\n")
        return EXIT_USAGE
    try:
        try:
            server.start()
        except (OSError, OverflowError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            err.write(f"rill: cannot listen on {host}:{port}: {reason}\n")
            return EXIT_USAGE
        with contextlib.suppress(OSError):
            out.write(server.url + "\n")
            out.flush()
        if isatty(err):
            auth = f"key {key}" if require_auth else "any key"
            err.write(f"rill: fake OpenRouter at {server.url} ({auth}); Ctrl-C stops it\n")
        while not stop.wait(0.5):
            pass
        return EXIT_STOPPED
    finally:
        server.stop()
        _restore(previous)


def _logger(path: str | None, err: IO[str]) -> Any:
    """Writes each entry as a JSON line to ``path`` (``-``: stderr), flushed; None: no log."""
    if path is None:
        return None
    import json

    out = err if path == "-" else open(path, "a", encoding="utf-8")  # noqa: SIM115 - for the life of the server
    lock = threading.Lock()

    def write(entry: dict[str, Any]) -> None:
        with lock, contextlib.suppress(OSError, ValueError):
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()

    return write


def _on_signals(handler: Any) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def main(argv: list[str] | None = None, prog: str = "python -m rill.fake") -> int:
    """Parse ``argv`` and serve; the exit code."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except UsageFailure as exc:
        sys.stderr.write(f"rill: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.list_scenarios:
        sys.stdout.write(list_scenarios())
        return 0
    return serve(
        args.host,
        args.port,
        key=args.key,
        require_auth=not args.no_auth,
        scenario=args.scenario,
        persona=args.persona,
        log=args.log,
    )
