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
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakeserver import FakeOpenRouter, Gate, Scenario

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


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.socket = f"rill-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.config = tmp / "tmux.conf"
        self.config.write_text("set -g set-clipboard on\nset -g history-limit 2000\n")
        term = os.environ.get("TERM", "")
        self.env = {**os.environ, "TERM": term if term not in ("", "dumb") else "xterm-256color"}
        self.path = ""

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-u", "-f", str(self.config), "-L", self.socket, *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def run(self, command: str) -> None:
        self("new-session", "-d", "-x", "120", "-y", "40", "-s", "main", command)
        self.path = self("display", "-p", "#{socket_path}").strip()

    def screen(self, *, escapes: bool = False) -> str:
        return self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "main")

    def wait_for(self, predicate: Callable[[str], object], timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{screen}")
            time.sleep(0.03)

    def wait_exit(self) -> str:
        screen = self.wait_for(EXIT.search)
        match = EXIT.search(screen)
        assert match is not None and match.group(1) == "0", screen
        return screen

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            capture_output=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if self.path:  # tmux leaves its socket file behind
            Path(self.path).unlink(missing_ok=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
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
    tmux.run(rill_command(fake_server, rill_env))
    screen = tmux.wait_for(FRAME.search)
    assert gate.wait_for_server(1, 10)  # the answer is really still held back
    assert "Hello" not in screen
    gate.release(1)
    screen = tmux.wait_exit()
    assert "Hello there" in screen  # and rendered: no asterisks
    assert not FRAME.search(screen)
    assert screen.splitlines()[0] == "Hello there"  # erased in place: nothing above the answer


def test_markdown_renders_as_markdown(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(content=pieces(ANSWER), chunk_delay=0.002))
    tmux.run(rill_command(fake_server, rill_env))
    screen = tmux.wait_exit()
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
    tmux.run(rill_command(fake_server, rill_env))
    screen = tmux.wait_exit()
    assert "copy ␛]52;c;aGVsbG8=␇ title ␛]2;pwned␇ end" in screen
    assert tmux("list-buffers").strip() == ""  # OSC 52 would have made one
    assert tmux("display", "-p", "-t", "main", "#{pane_title}").strip() != "pwned"


def test_raw_lets_them_through(tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path) -> None:
    # The contrast that shows the previous test can fail: with --raw tmux obeys the sequences.
    fake_server.enqueue(Scenario(content=["copy \x1b]52;c;aGVsbG8=\x07 title \x1b]2;pwned\x07\n"]))
    tmux.run(rill_command(fake_server, rill_env, "--raw"))
    tmux.wait_exit()
    assert "hello" in tmux("list-buffers")
    assert tmux("display", "-p", "-t", "main", "#{pane_title}").strip() == "pwned"


def test_no_color_means_no_escape_sequences(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(
        Scenario(content=pieces(ANSWER), reasoning=["Thinking ", "it over."], chunk_delay=0.002)
    )
    tmux.run(rill_command(fake_server, rill_env, env={"NO_COLOR": "1"}))
    screen = tmux.wait_exit()
    assert "Thinking it over." in screen  # reasoning, undimmed
    assert "• install it" in screen and "```" not in screen  # still markdown structure
    assert "\x1b" not in tmux.screen(escapes=True)
