"""rill in a real terminal: the installed command runs inside tmux against the fake server.

Each test starts its own tmux server (a unique ``-L`` socket, ``set-clipboard on`` so that an
OSC 52 sequence reaching the terminal would create a paste buffer), runs one ``rill`` command
with an explicit environment, reads the screen with ``capture-pane`` (``-e`` to see styles) and
kills the server afterwards. Every wait has a deadline of at most 10 seconds.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

FRAME = re.compile(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (?:thinking )?\d+\.\ds")
EXIT = re.compile(r"\[exit (\d+)\]")
ANSWER = """# Greeting guide

Say **hello** with `greet()`.

## Steps
- install it
- call it

```python
def greet(name):
    return f"hello {name}"
```

Done.
"""


def wait_exit(tmux: Tmux) -> str:
    """The screen once the command has shown its exit status, which must be 0."""
    screen = tmux.wait_for(EXIT.search, "exit status")
    match = EXIT.search(screen)
    assert match is not None and match.group(1) == "0", screen
    return screen


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    config = tmp_path / "tmux.conf"
    config.write_text("set -g set-clipboard on\nset -g history-limit 2000\n")
    term = os.environ.get("TERM", "")
    t = Tmux(
        config=config,
        env={**os.environ, "TERM": term if term not in ("", "dumb") else "xterm-256color"},
    )
    try:
        yield t
    finally:
        t.kill()


def rill_command(server: FakeOpenRouter, home: Path, *args: str, env: dict[str, str] = {}) -> str:  # noqa: B006 (read only)
    """A shell command running rill with nothing but the environment it needs, then showing its
    exit status and keeping the pane open."""
    bin_dir = str(Path(sys.executable).parent)
    variables = {
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "LC_ALL": "C.UTF-8",
        "RILL_HOME": str(home),
        "OPENROUTER_API_KEY": server.api_key,
        "NO_PROXY": "127.0.0.1,localhost",
        **env,
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
    argv = " ".join(
        shlex.quote(a) for a in ["rill", "--base-url", server.url, "-m", "test/m", *args]
    )
    return f'env -i TERM="$TERM" {assignments} {argv} hi; echo "[exit $?]"; sleep 60'


def pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_spinner_waits_for_the_first_token_then_disappears(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    gate = Gate(timeout=10)
    fake_server.enqueue(Scenario(content=["", "Hello **there**\n"], gate=gate))
    tmux.start(rill_command(fake_server, rill_env))
    screen = tmux.wait_for(FRAME.search)
    assert gate.wait_for_server(1, 10)  # the answer is really still held back
    assert "Hello" not in screen
    gate.release(1)
    screen = wait_exit(tmux)
    assert "Hello there" in screen  # and rendered: no asterisks
    assert not FRAME.search(screen)
    assert screen.splitlines()[0] == "Hello there"  # erased in place: nothing above the answer


def test_markdown_renders_as_markdown(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(content=pieces(ANSWER), chunk_delay=0.002))
    tmux.start(rill_command(fake_server, rill_env))
    screen = wait_exit(tmux)
    lines = [line.strip() for line in screen.splitlines()]
    assert "Greeting guide" in screen and "Steps" in lines
    assert not [line for line in lines if line.startswith("#")]
    assert "```" not in screen and "**" not in screen
    assert "• install it" in lines and "• call it" in lines
    assert 'return f"hello {name}"' in screen
    styled = tmux.screen(escapes=True)
    assert re.search(r"\x1b\[[0-9;]*1[;m][^\n]*hello", styled)  # bold
    # the code block: highlighted, on a background that stays set from its first row on
    code = re.search(r"\x1b\[(?:4[0-7]|48;[0-9;]+)m((?:(?!\x1b\[(?:0|49)m).)*)def", styled, re.S)
    assert code is not None and "greet" in styled[code.end() :].split("\n")[0]
    assert re.search(r"\x1b\[[0-9;]+mdef\x1b", styled)


def test_control_sequences_in_the_answer_do_not_reach_the_terminal(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    hostile = "copy \x1b]52;c;aGVsbG8=\x07 title \x1b]2;pwned\x07 end\n"
    fake_server.enqueue(Scenario(content=pieces(hostile, 3)))
    tmux.start(rill_command(fake_server, rill_env))
    screen = wait_exit(tmux)
    assert "copy ␛]52;c;aGVsbG8=␇ title ␛]2;pwned␇ end" in screen
    assert tmux("list-buffers").strip() == ""  # OSC 52 would have made one
    assert tmux("display", "-p", "-t", "main", "#{pane_title}").strip() != "pwned"


def test_raw_lets_them_through(tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path) -> None:
    # The contrast that shows the previous test can fail: with --raw tmux obeys the sequences.
    fake_server.enqueue(Scenario(content=["copy \x1b]52;c;aGVsbG8=\x07 title \x1b]2;pwned\x07\n"]))
    tmux.start(rill_command(fake_server, rill_env, "--raw"))
    wait_exit(tmux)
    assert "hello" in tmux("list-buffers")
    assert tmux("display", "-p", "-t", "main", "#{pane_title}").strip() == "pwned"


def test_no_color_means_no_escape_sequences(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(
        Scenario(content=pieces(ANSWER), reasoning=["Thinking ", "it over."], chunk_delay=0.002)
    )
    tmux.start(rill_command(fake_server, rill_env, env={"NO_COLOR": "1"}))
    screen = wait_exit(tmux)
    assert "Thinking it over." in screen  # reasoning, undimmed
    assert "• install it" in screen and "```" not in screen  # still markdown structure
    assert "\x1b" not in tmux.screen(escapes=True)


@pytest.mark.parametrize("no_color", [True, False])
def test_no_color_tables_have_no_bold_either(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path, no_color: bool
) -> None:
    # rich's own NO_COLOR support keeps bold headers; without NO_COLOR they are bold (the contrast
    # shows that the check can see them).
    env = {"NO_COLOR": "1"} if no_color else {}
    first = rill_command(fake_server, rill_env, env=env).split("; echo")[0]
    # `rill usage` prints through the shared rich table (`history list` has a layout of its own).
    listing = first.replace(f"--base-url {fake_server.url} -m test/m hi", "usage")
    tmux.start(f'{first} >/dev/null && {listing}; echo "[exit $?]"; sleep 60')
    screen = wait_exit(tmux)
    assert "MODEL" in screen and "test/m" in screen
    styled = tmux.screen(escapes=True)
    assert ("\x1b" in styled) is not no_color, repr(styled[:300])
