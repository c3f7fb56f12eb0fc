"""rill's own stderr lines in a real terminal: what a hostile server puts in an error message,
a retry note, a model name or a provider is shown, not obeyed; and a line after an answer starts
a new line.

The installed ``rill`` runs inside tmux (``set-clipboard on``: an OSC 52 that reached the
terminal would create a paste buffer) against the fake server.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter, Scenario
from tests import test_terminal_tmux
from tests.test_terminal_tmux import EXIT, rill_command
from tests.tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

#: Each test gets a tmux server of its own, set up as for the answer's terminal tests.
tmux = test_terminal_tmux.tmux


def finished(term: Tmux) -> tuple[str, int]:
    screen = term.wait_for(EXIT.search, "exit status")
    match = EXIT.search(screen)
    assert match is not None
    return screen, int(match.group(1))


def test_stats_start_on_their_own_line_after_an_open_one(
    tmux: Tmux,
    fake_server: FakeOpenRouter,
    rill_env: Path,
) -> None:
    # -f raw writes the server's bytes as they are; this stream's last line has no line ending.
    fake_server.enqueue(Scenario(content=["hi"], no_final_newline=True))
    tmux.start(rill_command(fake_server, rill_env, "-f", "raw", "--stats"))
    screen, code = finished(tmux)
    assert code == 0, screen
    stats = [line for line in screen.splitlines() if "rill: " in line]
    assert stats and stats[0].startswith("rill: "), screen
    assert re.search(r"total \d+\.\d\d s", stats[0]), screen


def test_stats_in_a_file_get_no_line_of_their_own_before_them(
    tmux: Tmux,
    fake_server: FakeOpenRouter,
    rill_env: Path,
    tmp_path: Path,
) -> None:
    # The answer's open line is on the terminal; stderr is a file, where nothing is open.
    log = tmp_path / "stderr.log"
    fake_server.enqueue(Scenario(content=["hi"], no_final_newline=True))
    command = rill_command(fake_server, rill_env, "-f", "raw", "--stats")
    tmux.start(command.replace(" hi; ", f" hi 2>{log}; ", 1))
    screen, code = finished(tmux)
    assert code == 0, screen
    lines = log.read_text().split("\n")
    assert lines[0].startswith("rill: ") and lines[1:] == [""], lines
