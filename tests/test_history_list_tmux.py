"""history list in a real terminal (tmux) at 80 and 60 columns: the full short ID, one line
per chat, the title cut with "…"; --json untouched."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from rill.history import ExchangeStart, HistoryStore
from tests.e2e import run
from tests.tmux import Tmux

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TITLE = "a very long title that goes on and on about many things, far longer than a line " * 2
DONE = "[listed]"


def fill(home: Path) -> list[str]:
    store = HistoryStore(home / "history")
    ids = []
    for _ in range(3):
        recorder = store.begin(
            ExchangeStart(
                None,
                [{"role": "user", "content": TITLE}],
                "google/gemini-2.5-flash",
                {},
                "http://x",
            )
        )
        recorder.finish({"content": "x", "served_model": "google/gemini-2.5-flash-preview-05-20"})
        assert recorder.chat_id is not None
        ids.append(recorder.chat_id)
    return ids


@pytest.mark.parametrize("width", [80, 60])
def test_list_fits_the_terminal(tmp_path: Path, rill_env: Path, width: int) -> None:
    ids = fill(rill_env)
    rill = str(Path(sys.executable).with_name("rill"))
    command = (
        f"env RILL_HOME={shlex.quote(str(rill_env))} LC_ALL=C.UTF-8 {shlex.quote(rill)} "
        f'history list; echo "{DONE}"; sleep 60'
    )
    tmux = Tmux(env={**os.environ, "TERM": "xterm-256color"})
    try:
        tmux.start(command, width=width, height=20)
        screen = tmux.wait_for(lambda s: DONE in s, "the list")
    finally:
        tmux.kill()
    lines = [line for line in screen.splitlines() if line.strip()]
    listed = lines[1 : lines.index(DONE)]
    assert len(listed) == 3, screen  # one line per chat: nothing wrapped
    for chat_id in ids:
        assert any(line.startswith(chat_id + " ") for line in listed), screen
    for line in listed:
        assert len(line) <= width and line.endswith("…"), screen
        if width >= 80:
            assert "google/gemini-2.5-flash" in line, screen
    raw = json.loads(run(["history", "list", "--json"]).stdout)  # untouched by the width
    assert sorted(row["id"] for row in raw) == sorted(ids)
    assert all(row["model"] == "google/gemini-2.5-flash-preview-05-20" for row in raw)
