"""Self-tests of the fake OpenRouter server as a command (``python -m rill.fake``, ``rill
fake-server``), its documentation and its place in the package."""

from __future__ import annotations

import ast
import json
import math
import re
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rill.fake import CATALOGUE, PERSONAS, FakeOpenRouter, canned_scenario
from tests.e2e import RILL, stop
from tests.fakeclient import OPENER, ROOT, chat


def test_command_line() -> None:
    command = [sys.executable, "-m", "rill.fake", "--no-auth", "--scenario", "echo"]
    out, err = subprocess.PIPE, subprocess.PIPE
    with subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert select.select([proc.stdout], [], [], 10)[0], "no banner"
            line = proc.stdout.readline()
            pattern = r"(http://127\.0\.0\.1:\d+/api/v1)\n"
            m = re.fullmatch(pattern, line)
            assert m, line
            req = urllib.request.Request(
                m[1] + "/chat/completions",
                data=json.dumps(chat("any", stream=False)).encode(),
                headers={"Content-Type": "application/json"},
            )
            with OPENER.open(req, timeout=5) as resp:
                assert json.loads(resp.read())["choices"][0]["message"]["content"] == "hi there"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()


# --- rill fake-server ---------------------------------------------------------------------


def fake_server_process(*args: str) -> subprocess.Popen[str]:
    command = [*RILL, "fake-server", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen[str], timeout: float = 10) -> str:
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], timeout)[0], "no URL line"
    return proc.stdout.readline()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_rill_fake_server_prints_its_url_and_stops_quietly(signum: int) -> None:
    with fake_server_process("--port", "0", "--scenario", "hostile-nan") as proc:
        try:
            url = first_line(proc).rstrip("\n")
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", url), url
            req = urllib.request.Request(
                url + "/chat/completions",
                data=json.dumps(chat("any", stream=False)).encode(),
                headers={"Authorization": "Bearer sk-or-v1-test"},
            )
            with OPENER.open(req, timeout=5) as resp:
                assert math.isnan(json.loads(resp.read())["usage"]["cost"])
            proc.send_signal(signum)
            assert proc.wait(timeout=10) == 0
            assert proc.stderr is not None and proc.stderr.read() == ""
        finally:
            stop([proc])


def test_a_busy_port_is_one_line_and_exit_2(fake_server: FakeOpenRouter) -> None:
    for command in (
        [*RILL, "fake-server", "--port", str(fake_server.port)],
        [sys.executable, "-m", "rill.fake", "--port", str(fake_server.port)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2 and done.stdout == ""
        assert re.fullmatch(
            rf"rill: cannot listen on 127\.0\.0\.1:{fake_server.port}: .+\n", done.stderr
        )


@pytest.mark.parametrize(
    "args",
    [["fake-server", "--scenario", "nope"], ["fake-server", "--scenario", "hostile-key-nowhere"]],
)
def test_bad_fake_server_options_are_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([*RILL, *args], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("rill: unknown scenario") and done.stderr.count("\n") == 1


def test_python_m_rill_fake_bad_option() -> None:
    command = [sys.executable, "-m", "rill.fake", "--bogus"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr == "rill: unrecognized arguments: --bogus (see python -m rill.fake --help)\n"


def test_the_help_and_the_list_document_every_scenario() -> None:
    listing = subprocess.run(
        [*RILL, "fake-server", "--list-scenarios"], capture_output=True, text=True, timeout=30
    )
    module_help = subprocess.run(
        [sys.executable, "-m", "rill.fake", "--help"], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0 and module_help.returncode == 0
    for name, _ in CATALOGUE:
        assert f"  {name}\n" in listing.stdout and f"  {name}\n" in module_help.stdout
    command_help = subprocess.run(
        [*RILL, "fake-server", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    flat = re.sub(r"(?<=\w-)\s+", "", " ".join(command_help.split()))  # words cut at hyphens
    for word in ("--port", "--scenario", "--list-scenarios", "Exit status: 0", "busy port"):
        assert word in flat
    for name, _ in CATALOGUE:
        if name.startswith("hostile-"):
            assert name in flat


def test_every_catalogue_entry_is_a_scenario() -> None:
    examples = {"STATUS": "429", "KIND": "upstream", "N": "7", "SIZE": "3k", "FIELD": "model"}
    examples["PLACE"] = "message"
    for name, _ in CATALOGUE:
        plain = re.sub(r"\[-[^]]*\]", "", name)  # without the optional parts
        full = re.sub(r"\[-([^]|]*)[^]]*\]", r"-\1", name)  # with the first of each
        for variant in {plain, full}:
            key = re.sub(r"[A-Z]+", lambda m: examples[m[0]], variant)
            assert canned_scenario(f"fake/{key}") is not None, key
    for bad in ("hostile-nope", "hostile-key-url", "hostile-type-usage", "hostile-endless-line-x"):
        assert canned_scenario(f"fake/{bad}") is None


def test_the_commands_persona_choices_are_the_fakes() -> None:
    from rill.commands.fake import Persona

    assert tuple(p.value for p in Persona) == PERSONAS


def imports_of(path: Path) -> set[str]:
    """The absolute module names ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_rill_fake_sits_on_the_bottom_layers_and_only_its_command_imports_it() -> None:
    src = ROOT / "src" / "rill"
    bottom = {"rill", "rill.errors", "rill.events", "rill.env"}
    for path in (src / "fake").glob("*.py"):
        for name in imports_of(path):
            top = name.split(".")[0]
            ok = name in bottom or name.startswith("rill.fake") or top in sys.stdlib_module_names
            assert ok, f"{path.name} imports {name}"
    importers = [
        p.relative_to(src).as_posix()
        for p in src.rglob("*.py")
        if "fake" not in p.relative_to(src).parts[:1]
        and any(n == "rill.fake" or n.startswith("rill.fake.") for n in imports_of(p))
    ]
    assert importers == ["commands/fake.py"]
