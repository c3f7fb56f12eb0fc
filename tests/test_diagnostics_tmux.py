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

OSC52 = "\x1b]52;c;aGVsbG8=\x07"
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
HOSTILE = f"no {OSC52}clip {TITLE}title {CLEAR}clear"
SHOWN = "no ␛]52;c;aGVsbG8=␇clip ␛]0;pwned␇title ␛[2J␛[Hclear"


def finished(term: Tmux) -> tuple[str, int]:
    screen = term.wait_for(EXIT.search, "exit status")
    match = EXIT.search(screen)
    assert match is not None
    return screen, int(match.group(1))


def assert_not_obeyed(term: Tmux, screen: str) -> None:
    assert term("list-buffers").strip() == "", screen  # OSC 52 would have made one
    assert term("display", "-p", "-t", "main", "#{pane_title}").strip() != "pwned"
    assert not screen.startswith("rill: title"), screen  # a clear screen would lose the top


def test_a_hostile_error_message_is_shown_not_obeyed(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario.error(400, message=HOSTILE))
    tmux.start(rill_command(fake_server, rill_env))
    screen, code = finished(tmux)
    assert code == 7, screen
    assert f"rill: {SHOWN}" in screen and "(HTTP 400)" in screen
    assert_not_obeyed(tmux, screen)


def test_a_hostile_midstream_error_is_shown_not_obeyed(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(
        Scenario(
            content=["partial ", "answer\n"],
            midstream_error_after=1,
            midstream_error={"code": "server_error", "message": HOSTILE},
        )
    )
    tmux.start(rill_command(fake_server, rill_env))
    screen, code = finished(tmux)
    assert code == 7, screen
    assert "partial" in screen and f"rill: {SHOWN}" in screen
    assert_not_obeyed(tmux, screen)


def test_a_hostile_retry_note_is_shown_not_obeyed(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(
        Scenario.error(503, message=HOSTILE, retry_after=0.1), Scenario(content=["fine\n"])
    )
    tmux.start(rill_command(fake_server, rill_env, "--retries", "1"))
    screen, code = finished(tmux)
    assert code == 0, screen
    assert f"rill: retrying in 0.1 s ({SHOWN})" in screen
    assert "fine" in screen
    assert_not_obeyed(tmux, screen)


def test_a_hostile_model_and_provider_in_stats_are_shown_not_obeyed(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(
        Scenario(content=["fine\n"], served_model=f"m{OSC52}", provider=f"p{TITLE}{CLEAR}")
    )
    tmux.start(rill_command(fake_server, rill_env, "--stats"))
    screen, code = finished(tmux)
    assert code == 0, screen
    assert "m␛]52;c;aGVsbG8=␇ via p␛]0;pwned␇␛[2J␛[H" in screen
    assert screen.startswith("fine\n")
    assert_not_obeyed(tmux, screen)


def test_hostile_tool_names_in_the_note_are_shown_not_obeyed(
    tmux: Tmux, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(tool_calls=[{"name": f"get{OSC52}{TITLE}", "arguments": {}}]))
    tmux.start(rill_command(fake_server, rill_env))
    screen, code = finished(tmux)
    assert code == 0, screen
    assert "rill: the answer is 1 tool call (get␛]52;c;aGVsbG8=␇␛]0;pwned␇)" in screen
    assert_not_obeyed(tmux, screen)


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
