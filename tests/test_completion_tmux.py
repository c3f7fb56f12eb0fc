"""Shell completion: every option, choice, model ID, chat ID, template and config key, checked
in-process and in real shells (bash, zsh, fish) under tmux.

The models cache is filled the way a user fills it, with ``rill models --base-url <fake
server>``, and chats by asking the fake server; the shells then load the script that ``rill
completions SHELL`` prints (the same text as ``completions/``) and get ``rill -m <Tab>``.
"""

from __future__ import annotations

import json
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
    assert complete_bash("rill chat -m ") == model_ids
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


def test_top_level_options_are_the_prompt_commands_options() -> None:
    offered = complete_bash("rill --")
    for option in ("--model", "--format", "--color", "--chat", "--template", "--dry-run"):
        assert option in offered
    assert "--install-completion" in offered  # the group's own options stay
    assert complete_bash("rill --mo") == ["--model"]
    assert complete_bash("rill --dry") == ["--dry-run"]
    assert "--system" in complete_bash("rill -m x --")


def test_choices_complete() -> None:
    assert complete_bash("rill --color ") == ["auto", "always", "never"]
    assert complete_bash("rill -f j") == ["jsonl", "json"]
    assert complete_bash("rill --reasoning-effort ") == ["low", "medium", "high"]
    assert complete_bash("rill usage --by ") == ["model", "day"]
    assert complete_bash("rill completions ") == ["bash", "zsh", "fish"]


def test_every_option_of_every_command_completes() -> None:
    import typer

    root = typer.main.get_command(app)
    ctx = root.make_context("rill", [], resilient_parsing=True)

    def leaves(command: Any, words: list[str]) -> Iterator[tuple[list[str], Any]]:
        for name, sub in getattr(command, "commands", {}).items():
            if hasattr(sub, "commands"):
                yield from leaves(sub, [*words, name])
            else:
                yield [*words, name], sub

    for words, command in leaves(root, []):
        offered = set(complete_bash(" ".join(["rill", *words, "--"])))
        names = {
            name
            for p in command.get_params(ctx)
            if getattr(p, "param_type_name", "") == "option" and not p.hidden
            for name in [*p.opts, *p.secondary_opts]
            if name.startswith("--")
        }
        assert names <= offered, (words, names - offered)


def test_chat_ids_complete_wherever_a_chat_is_named(fake_server: Any) -> None:
    for prompt in ("one", "two"):
        result = CliRunner().invoke(app, ["--base-url", fake_server.url, prompt])
        assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["history", "list", "--json"])
    ids = sorted(row["id"] for row in json.loads(listed.stdout))
    assert len(ids) == 2
    named = ("rill --chat ", "rill history show ", "rill history rm ", "rill ask --chat ")
    for line in (*named, "rill chat --chat "):
        assert sorted(complete_bash(line)) == ids, line
    assert complete_bash(f"rill history show {ids[0][:-1]}") == [ids[0]]


def test_config_keys_and_values_complete(rill_env: Path) -> None:
    for command in ("get", "set", "unset"):
        offered = complete_bash(f"rill config {command} ")
        assert {"model", "retries", "color", "history_format"} <= set(offered)
    assert complete_bash("rill config get ret") == ["retries"]
    assert complete_bash("rill config set color ") == ["auto", "always", "never"]
    assert complete_bash("rill config set stats ") == ["true", "false"]
    assert complete_bash("rill config set history_format ") == ["json", "toml"]
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('[aliases]\nfast = "openai/gpt-4o"\n')
    assert "aliases.fast" in complete_bash("rill config get al")


# --- real shells under tmux -------------------------------------------------------------------


@contextmanager
def tmux_shell(command: list[str], env: dict[str, str]) -> Iterator[Tmux]:
    tmux = Tmux(env=env)
    tmux.start(*command, width=200, height=100)
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


def shell_env(rill_env: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a shell under test: this rill on PATH, an empty home, RILL_HOME."""
    exe = shutil.which("rill")
    if exe is None:
        pytest.skip("the rill command is not on PATH")
    home = tmp_path / "shell-home"
    home.mkdir(exist_ok=True)
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
    return env


def needs(shell: str) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")


def type_and_tab(
    shell: str, setup: str, env: dict[str, str], line: str, tabs: int, expected: list[str]
) -> str:
    """Start ``shell``, run ``setup``, type ``line``, press Tab; the screen once it shows
    every string of ``expected``."""
    command = SHELLS[shell][0]
    with tmux_shell(command, env) as pane:
        # The quotes keep the marker off the echoed command line: only the output matches.
        pane.send("-l", f'cd {ROOT} && {setup} && echo READY-"4"2')
        pane.send("Enter")
        pane.wait_for(lambda screen: "READY-42" in screen, "prompt after the setup", DEADLINE)
        pane.send("-l", line)
        pane.send(*["Tab"] * tabs)
        return pane.wait_for(
            lambda screen: all(text in screen for text in expected),
            f"{expected} after {line!r}<Tab>",
            DEADLINE,
        )


@pytest.mark.parametrize("shell", list(SHELLS))
def test_tab_after_dash_m_lists_model_ids(
    shell: str, model_ids: list[str], rill_env: Path, tmp_path: Path
) -> None:
    needs(shell)
    _command, setup, tabs = SHELLS[shell]
    env = shell_env(rill_env, tmp_path)
    screen = type_and_tab(shell, setup, env, "rill -m ", tabs, model_ids)
    assert "anthropic/claude-sonnet-4" in screen


#: shell → how it loads the script ``rill completions SHELL`` prints
LOAD = {
    "bash": 'eval "$(rill completions bash)"',
    # LISTMAX: list every candidate without asking "do you wish to see all N possibilities?"
    "zsh": (
        'LISTMAX=10000 && autoload -Uz compinit && compinit -u -D && eval "$(rill completions zsh)"'
    ),
    "fish": "rill completions fish | source",
}


@pytest.fixture
def chat_id(fake_server: Any) -> str:
    """One recorded chat (one, so that a single Tab completes its ID in every shell)."""
    result = CliRunner().invoke(app, ["--base-url", fake_server.url, "one"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["history", "list", "--json"])
    (row,) = json.loads(listed.stdout)
    return str(row["id"])


@pytest.mark.parametrize("shell", list(SHELLS))
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("rill --mo", ["rill --model"]),  # the one match is completed in place
        ("rill config get ret", ["rill config get retries"]),
        ("rill --color ", ["always", "never"]),
        # Options early in the alphabet: fish's pager shows only a screenful of rows.
        ("rill --", ["--model", "--format", "--base-url", "--dry-run"]),
        ("rill usage --by ", ["model", "day"]),
    ],
)
def test_options_choices_and_keys_complete_in_the_shell(
    shell: str, line: str, expected: list[str], rill_env: Path, tmp_path: Path
) -> None:
    needs(shell)
    tabs = 1 if len(expected) == 1 else SHELLS[shell][2]
    type_and_tab(shell, LOAD[shell], shell_env(rill_env, tmp_path), line, tabs, expected)


@pytest.mark.parametrize("shell", list(SHELLS))
def test_history_show_completes_the_chat_id_in_the_shell(
    shell: str, chat_id: str, rill_env: Path, tmp_path: Path
) -> None:
    needs(shell)
    env = shell_env(rill_env, tmp_path)
    type_and_tab(shell, LOAD[shell], env, "rill history show ", 1, [f"show {chat_id}"])
