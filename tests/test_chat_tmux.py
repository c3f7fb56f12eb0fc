"""``rill chat`` in a real terminal multiplexer: the full screen as tmux shows it (the pty tests
in test_chat_pty.py read the same program through pyte)."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import RILL
from tests.tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_two_turns_render_markdown_on_the_full_screen_and_ctrl_d_leaves(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    env = {**os.environ, "RILL_BASE_URL": fake_server.url, "TERM": "xterm-256color"}
    tmux = Tmux(env=env)
    command = shlex.join([*RILL, "chat", "-m", "fake/echo"])
    tmux.start("sh", "-c", f"{command}; echo EXIT=$?; sleep 60", width=100, height=30)
    try:
        tmux.wait_for(lambda s: ">" in s.splitlines(), "the first prompt")
        tmux.send("-l", "plain words first")
        tmux.send("Enter")
        tmux.wait_for(lambda s: s.count("plain words first") == 2, "the first answer")
        tmux.send("-l", "# A heading and **bold** words")
        tmux.send("Enter")
        screen = tmux.wait_for(
            lambda s: any("bold words" in line and "**" not in line for line in s.splitlines()),
            "the second answer rendered as markdown",
        )
        # The typed line keeps its asterisks; the rendered answer has none, and no '#'.
        answer = [line for line in screen.splitlines() if "bold words" in line and "**" not in line]
        assert answer and not answer[0].lstrip().startswith("#"), screen
        tmux.wait_for(lambda s: s.splitlines().count(">") >= 1, "the third prompt")
        tmux.send("C-d")
        tmux.wait_for(lambda s: "EXIT=0" in s, "rill chat to leave with 0")
    finally:
        tmux.kill()
    assert len(fake_server.chat_requests) == 2
