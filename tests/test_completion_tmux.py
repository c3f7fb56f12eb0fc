"""Shell completion: model IDs from the models cache, in-process and in real shells under tmux.

The cache is filled the way a user fills it, with ``rill models --base-url <fake server>``; the
shells then source the shipped scripts from ``completions/`` and get ``rill -m <Tab>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rill.cli import app
from tests.tmux import Tmux

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 10.0  # seconds any one wait may take


@pytest.fixture
def model_ids(fake_server: Any, rill_env: Path) -> list[str]:
    """Fill the models cache from the fake server; returns the IDs it lists."""
    result = CliRunner().invoke(app, ["models", "--base-url", fake_server.url])
    assert result.exit_code == 0, result.output
    assert (rill_env / "cache" / "models.json").exists()
    return sorted(m["id"] for m in fake_server.models)


def complete_bash(line: str) -> list[str]:
    """What ``rill`` offers for the last word of ``line`` (bash protocol, in-process)."""
    words = line.split(" ")
    env = {
        "_RILL_COMPLETE": "complete_bash",
        "COMP_WORDS": line,
        "COMP_CWORD": str(len(words) - 1),
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="rill")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


# --- the completion protocol --------------------------------------------------------------------


def test_model_option_offers_cached_ids(model_ids: list[str]) -> None:
    assert complete_bash("rill -m ") == model_ids
    assert complete_bash("rill --model ") == model_ids
    assert complete_bash("rill ask -m ") == model_ids
    assert complete_bash("rill -m anth") == ["anthropic/claude-sonnet-4"]
    assert complete_bash("rill -f text -m goo") == ["google/gemini-2.5-flash"]


def test_aliases_are_offered_with_the_ids(model_ids: list[str], rill_env: Path) -> None:
    (rill_env / "config.toml").write_text('[aliases]\nfast = "openai/gpt-4o"\n')
    assert complete_bash("rill -m ") == sorted([*model_ids, "fast"])


def test_the_installed_command_completes_model_ids(model_ids: list[str]) -> None:
    exe = shutil.which("rill")
    if exe is None:
        pytest.skip("the rill command is not on PATH")
    env = {**os.environ, "_RILL_COMPLETE": "complete_bash", "COMP_WORDS": "rill -m "}
    env["COMP_CWORD"] = "2"
    done = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == model_ids


def test_no_cache_offers_nothing_and_fails_nothing() -> None:
    assert complete_bash("rill -m ") == []


def test_templates_and_subcommands_complete(rill_env: Path) -> None:
    (rill_env / "templates").mkdir(parents=True)
    (rill_env / "templates" / "review.toml").write_text('prompt = "x"\n')
    assert complete_bash("rill -t ") == ["review"]
    assert complete_bash("rill templates show r") == ["review"]
    assert {"models", "config", "templates", "history"} <= set(complete_bash("rill "))
    assert complete_bash("rill config ") == ["path", "show", "get", "set", "unset"]


# --- real shells under tmux -------------------------------------------------------------------


@contextmanager
def tmux_shell(command: list[str], env: dict[str, str]) -> Iterator[Tmux]:
    tmux = Tmux(env=env)
    tmux.start(*command, width=200, height=50)
    try:
        yield tmux
    finally:
        tmux.kill()


#: shell → (command line, setup typed into it, Tabs needed to show the candidates)
SHELLS = {
    "bash": (["bash", "--norc", "--noprofile"], "source completions/rill.bash", 2),
    "zsh": (
        ["zsh", "-f"],
        "autoload -Uz compinit && compinit -u -D && source completions/_rill",
        1,
    ),
    "fish": (["fish", "--no-config"], "source completions/rill.fish", 1),
}


@pytest.mark.parametrize("shell", list(SHELLS))
def test_tab_after_dash_m_lists_model_ids(
    shell: str, model_ids: list[str], rill_env: Path, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    exe = shutil.which("rill")
    if exe is None:
        pytest.skip("the rill command is not on PATH")
    command, setup, tabs = SHELLS[shell]
    home = tmp_path / "shell-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(
        PATH=f"{Path(exe).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        RILL_HOME=str(rill_env),
        PS1="$ ",
        LANG="C.UTF-8",
    )
    with tmux_shell(command, env) as pane:
        # The quotes keep the marker off the echoed command line: only the output matches.
        pane.send("-l", f'cd {ROOT} && {setup} && echo READY-"4"2')
        pane.send("Enter")
        pane.wait_for(lambda screen: "READY-42" in screen, "prompt after the setup", DEADLINE)
        pane.send("-l", "rill -m ")
        pane.send(*["Tab"] * tabs)
        screen = pane.wait_for(
            lambda screen: all(model in screen for model in model_ids), "model IDs", DEADLINE
        )
    assert "anthropic/claude-sonnet-4" in screen
