"""Every fault rill must survive, as one table: the test walks it through the CLI and README.md's
"Faults and exit codes" section is checked against it (``python -m tests.faults`` prints the
section). A row scripts the fake server (a ``Scenario`` or a canned model name) or points rill at
a base URL that fails, then says which exit code and which words on stderr are expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rill.fake import FakeOpenRouter, Scenario

MIB = 1 << 20


@dataclass(frozen=True)
class Fault:
    name: str
    """What happens, as the README shows it."""
    exit_code: int
    stderr: str
    """Words the one-line message must contain ("" when the upstream's text varies)."""
    scenario: Scenario | str | None = None
    """Queued on the fake server; a string is a canned model name."""
    args: list[str] = field(default_factory=list)
    base_url: Callable[[FakeOpenRouter], str] | None = None
    without_key: bool = False


def _tls(server: FakeOpenRouter) -> str:
    return server.url.replace("http://", "https://")


def _refused(_server: FakeOpenRouter) -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


FAULTS = [
    Fault("400 invalid request (unknown model)", 7, "not a valid model", Scenario.error(400)),
    Fault("401 missing or empty key", 4, "No cookie auth credentials found", Scenario.error(401)),
    Fault("401 wrong key", 4, "User not found", Scenario.error(401, "user-not-found")),
    Fault("402 out of credits", 5, "requires more credits", Scenario.error(402)),
    Fault("403 moderation", 4, "", Scenario.error(403)),
    Fault("404 no endpoints for the model", 7, "", Scenario.error(404)),
    Fault("408 request timeout, after retries", 7, "", Scenario.error(408, repeat=3)),
    Fault("413 payload too large", 7, "", Scenario.error(413)),
    Fault("422 unprocessable", 7, "", Scenario.error(422)),
    Fault(
        "429 rate limited, after retries (Retry-After honoured)",
        6,
        "Rate limit",
        Scenario.error(429, retry_after=0, repeat=3),
    ),
    Fault(
        "429 upstream provider (the provider's own words shown)",
        6,
        "[",
        Scenario.error(429, "upstream", retry_after=0, repeat=3),
    ),
    Fault("500 internal error", 7, "", Scenario.error(500)),
    Fault(
        "502 HTML page from the edge (non-JSON body)",
        7,
        "502 Bad Gateway",
        Scenario.error(502, "html", repeat=3),
    ),
    Fault(
        "503 no provider available, after retries",
        7,
        "",
        Scenario.error(503, retry_after=0, repeat=3),
    ),
    Fault("504 gateway timeout", 7, "", Scenario.error(504)),
    Fault("524 / 529 edge timeout, provider overloaded", 7, "", Scenario.error(529)),
    Fault(
        "error body without `error.code` (2026 availability shape)",
        7,
        "",
        Scenario.error(404, "availability"),
    ),
    Fault("mid-stream error chunk", 7, "", "fake/midstream-error"),
    Fault(
        "mid-stream error with empty `choices` and a string code",
        7,
        "",
        "fake/midstream-error-empty",
    ),
    Fault(
        "connection closed mid-stream (no finish reason, no [DONE])",
        7,
        "closed before the answer was complete",
        "fake/truncated",
    ),
    Fault(
        "stream ends without finish reason or [DONE]",
        7,
        "no finish reason",
        Scenario(content=["x"], send_finish=False, send_done=False, usage_style=None),
    ),
    Fault(
        "empty answer with finish `stop` but native `network_error`",
        7,
        "network_error",
        "fake/silent-failure",
    ),
    Fault("broken JSON in a data line", 7, "malformed JSON", "fake/broken-json"),
    Fault(
        "stream stalls longer than --timeout",
        8,
        "idle timeout",
        Scenario(content=["a", "b"], stall_after=1, stall_seconds=5),
        ["--timeout", "0.5"],
    ),
    Fault(
        "keep-alives only, longer than --timeout (they are activity)",
        0,
        "",
        Scenario(content=["ok"], delay_first_data=1.2, keepalive_every=0.1),
        ["--timeout", "0.5"],
    ),
    Fault(
        "no token within --first-token-timeout",
        8,
        "first token",
        Scenario(content=["a"], delay_first_data=5, keepalive_every=0.1),
        ["--first-token-timeout", "0.5"],
    ),
    Fault(
        "run longer than --total-timeout",
        8,
        "total time limit",
        Scenario(content=list("abcdefghij"), chunk_delay=0.3),
        ["--total-timeout", "0.8"],
    ),
    Fault("a single data line of 4 MiB", 0, "", Scenario(content=["a"], huge_piece_bytes=4 * MIB)),
    Fault(
        "answer that does not match --schema (kept on stdout and in history)",
        9,
        "does not match the schema at $.name",
        "fake/schema-invalid",
        ["--schema", "name"],
    ),
    Fault(
        "answer that is not JSON with --schema",
        9,
        "the answer is not JSON",
        "fake/demo",
        ["--schema", "name"],
    ),
    Fault("connection refused", 8, "cannot connect", None, ["--retries", "0"], _refused),
    Fault(
        "DNS failure",
        8,
        "cannot connect",
        None,
        ["--retries", "0"],
        lambda _s: "http://rill-test-host.invalid/v1",
        without_key=True,
    ),
    Fault("TLS failure", 8, "TLS handshake", None, ["--retries", "0"], _tls),
    Fault(
        "no API key for OpenRouter",
        3,
        "OPENROUTER_API_KEY",
        None,
        [],
        lambda _s: "https://openrouter.ai/api/v1",
        without_key=True,
    ),
    Fault(
        "API key over plain http to a non-loopback host",
        3,
        "plain http",
        None,
        [],
        lambda _s: "http://example.invalid/v1",
    ),
]


def readme_section() -> str:
    """The markdown table README.md must carry between its ``faults`` markers."""
    rows = ["| fault | exit code |", "|---|---|"]
    rows += [f"| {f.name} | {f.exit_code} |" for f in FAULTS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(readme_section())
