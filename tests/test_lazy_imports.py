"""The prompt path stays light: no markdown, no syntax highlighting, no history store.

``rill "prompt" | …`` runs inside loops and one-liners, so everything it imports is paid on every
call. Markdown rendering (``rich.markdown``, ``markdown_it``, ``pygments``), rich tables, the
terminal layer (``rill.terminal``), the history store (``rill.history``) and the schema validator
(``jsonschema``, for ``--schema`` only) belong to terminals, subcommands and the flags that use
them, and must be imported inside the code that needs them. Each check runs in a fresh
interpreter, so nothing imported by the test process itself can hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rill.fake import DEMO_CONTENT, FakeOpenRouter

#: Modules (and their submodules) a piped prompt must never import.
HEAVY = (
    "rich.markdown",
    "markdown_it",
    "pygments",
    "rich.table",
    "rill.history",
    "rill.terminal",
    "rill.fake",
    "rill.tools",  # --tool / --mcp only
    "jsonschema",
    "mcp",
    "rill.input.attachments",  # only `-a` reads files
    "rill.stream.parts",  # and only its files need the pieced body
    "rill.chat",  # rill chat only, with its line editor:
    "prompt_toolkit",
    "jsonschema",  # only for --schema
)


def heavy_among(modules: list[str]) -> list[str]:
    """The entries of ``HEAVY`` that ``modules`` contains (a module or any of its submodules)."""
    return [h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules)]


def imported_by(
    argv: list[str], **kwargs: object
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime ARGV`` and return the process and every module it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        **kwargs,  # type: ignore[call-overload]
    )
    modules = [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    ]
    return done, modules


def test_importing_the_prompt_path() -> None:
    code = (
        "import json, sys, typer.main\n"
        "import rill.cli, rill.commands.prompt, rill.stream.pipeline, rill.stream.client\n"
        "import rill.output.formats, rill.stream.sse\n"
        "typer.main.get_command(rill.cli.app)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    assert "rill.stream.pipeline" in modules and "httpx" in modules  # the check saw the real path
    assert heavy_among(modules) == []


def test_version_imports_nothing_heavy() -> None:
    done, modules = imported_by(["-m", "rill", "--version"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rill.cli" in modules
    assert heavy_among(modules) == []


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_a_piped_prompt_imports_nothing_heavy(fake_server: FakeOpenRouter, fmt: str) -> None:
    argv = ["-m", "rill", "--base-url", fake_server.url, "-m", "x", "--no-history", "-f", fmt]
    done, modules = imported_by([*argv, "hi"])
    assert done.returncode == 0, done.stderr[-2000:]
    if fmt == "text":
        assert done.stdout == "".join(DEMO_CONTENT)
    assert {"rill.stream.pipeline", "rill.stream.sse", "rill.stream.client", "httpx"} <= set(
        modules
    )
    assert heavy_among(modules) == []


def test_the_line_editor_is_rill_chats_alone() -> None:
    """The whole command line (every subcommand registered, ``rill chat`` among them) does not
    import prompt_toolkit; the chat's editor does, so the check above would see it."""
    done, modules = imported_by(["-m", "rill", "history", "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rill.commands.chat" in modules
    assert heavy_among(modules) == []
    done, modules = imported_by(["-c", "import rill.chat.editor"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert heavy_among(modules) == ["rill.chat", "prompt_toolkit"]


def test_the_schema_validator_is_imported_only_with_a_schema(fake_server: FakeOpenRouter) -> None:
    argv = ["-m", "rill", "--base-url", fake_server.url, "-m", "fake/schema", "--no-history"]
    done, modules = imported_by([*argv, "--schema", "name", "hi"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "jsonschema" in modules  # the check above would see it
    assert json.loads(done.stdout) == {"name": "name text"}
    done, modules = imported_by([*argv, "hi"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "jsonschema" not in modules and "rill.schema" not in modules


#: What only ``rill serve`` may import.
SERVER_STACK = ("starlette", "uvicorn", "uvloop", "httptools", "rill.serve")


def test_only_serve_imports_the_server_stack(fake_server: FakeOpenRouter) -> None:
    argv = ["-m", "rill", "--base-url", fake_server.url, "-m", "x", "--no-history", "hi"]
    done, modules = imported_by(argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rill.stream.pipeline" in modules  # the check saw the prompt's real path
    stack = [m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_STACK)]
    assert stack == []
    done, modules = imported_by(["-m", "rill", "serve", "--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [m for m in modules if m.startswith(SERVER_STACK)]
