"""What a new user trips over at the command line: errors that name the command that failed,
a command name after prompt options, options that would silently do nothing, and the help.

Every run is the installed ``rill`` as a subprocess (against the fake server when it sends).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess

import typer

from rill.cli import app
from rill.commands import options as opt
from rill.commands.helptext import commands_footer
from rill.config.settings import SettingFlags
from rill.fake import FakeOpenRouter
from rill.input.routing import make_flags
from tests.e2e import run


def rill(*args: str) -> subprocess.CompletedProcess[str]:
    done = run(list(args), env=dict(os.environ))
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def one_error_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def dry_run_prompt(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout.split("\n\n", 1)[1])
    return str(body["messages"][-1]["content"])


# --- errors point at the command that failed --------------------------------------------------


def test_a_usage_error_names_the_help_of_the_failing_command() -> None:
    line = one_error_line(rill("usage", "--since", "bogus"))
    assert line.endswith("(see rill usage --help)")
    assert one_error_line(rill("history", "bogus")).endswith("(see rill history --help)")
    assert one_error_line(rill("history", "list", "--bogus")).endswith(
        "(see rill history list --help)"
    )
    assert one_error_line(rill("--bogus", "hi")).endswith("(see rill --help)")


def test_prompt_options_before_a_command_name_are_a_usage_error(
    fake_server: FakeOpenRouter,
) -> None:
    line = one_error_line(rill("--base-url", fake_server.url, "-m", "X", "history", "list"))
    assert "'history' is a command" in line
    assert "rill --base-url" in line and "-m X -- history list" in line
    assert "rill ask" in line and "'history list'" in line
    # Nothing was sent, so nothing was recorded.
    assert rill("history", "list").stdout == ""
    line = one_error_line(rill("--color", "never", "history", "list", "--limit", "3"))
    assert "options before it belong to the prompt" in line
    assert "No such option" not in line and "Possible options" not in line


def test_a_prompt_starting_with_a_command_name_is_sent_when_asked_for_plainly() -> None:
    assert dry_run_prompt(rill("--dry-run", "--", "history", "of", "rome")) == "history of rome"
    assert dry_run_prompt(rill("ask", "--dry-run", "history of rome")) == "history of rome"
    assert dry_run_prompt(rill("--dry-run", "historyless", "rome")) == "historyless rome"
    assert dry_run_prompt(rill("ask", "--dry-run", "me", "why")) == "me why"  # the command
    assert dry_run_prompt(rill("-m", "x", "--dry-run", "ask", "me")) == "ask me"  # a prompt
    done = rill("history", "list")  # still the command
    assert (done.returncode, done.stderr) == (0, "")


# --- options that would silently do nothing ---------------------------------------------------


def test_param_without_a_template_is_a_usage_error() -> None:
    line = one_error_line(rill("--dry-run", "-p", "lang", "Python", "hi"))
    assert "-p fills a template's placeholders" in line and "-t NAME" in line


def test_continue_and_chat_together_are_a_usage_error() -> None:
    line = one_error_line(rill("--dry-run", "-c", "--chat", "abc", "hi"))
    assert "-c" in line and "--chat" in line


def test_continue_without_any_chat_says_there_is_none_yet(fake_server: FakeOpenRouter) -> None:
    line = one_error_line(rill("--base-url", fake_server.url, "-c", "and then?"))
    assert "no chat to continue yet" in line
    assert "'last'" not in line
    assert rill("--base-url", fake_server.url, "hello").returncode == 0
    assert rill("--base-url", fake_server.url, "-c", "and then?").returncode == 0


def test_color_takes_only_its_choices() -> None:
    line = one_error_line(rill("--dry-run", "--color", "sometimes", "hi"))
    assert "auto" in line and "always" in line and "never" in line
    assert rill("--dry-run", "--color", "never", "hi").returncode == 0


def test_each_command_passes_the_settings_flags_it_has() -> None:
    """An option named as a settings field reaches ``resolve_settings``; a command without it
    leaves the key out."""
    assert sorted(opt.SETTING_FLAGS) == sorted(SettingFlags.__annotations__)
    request = ["model", "system", "temperature", "max_tokens", "base_url", "timeout"]
    limits = ["first_token_timeout", "total_timeout", "retries"]
    terminal = ["color", "markdown", "show_reasoning"]
    expected = {
        "ask": [*request, "connect_timeout", *limits, "stats", *terminal],
        "chat": [*request, *limits, *terminal],
        "serve": [*request, *limits],
        "batch": [*request, *limits],
    }
    root = typer.main.get_command(app)
    for name, keys in expected.items():
        command = root.commands[name]  # type: ignore[attr-defined]
        given = {param.name: None for param in command.params}
        assert list(opt.setting_flags(given)) == keys, name


def test_the_routing_options_are_make_flags_arguments() -> None:
    assert list(opt.ROUTING_FLAGS) == list(inspect.signature(make_flags).parameters)
    root = typer.main.get_command(app)
    for name in ("ask", "batch"):
        names = {param.name for param in root.commands[name].params}  # type: ignore[attr-defined]
        assert set(opt.ROUTING_FLAGS) <= names, name


# --- help ---------------------------------------------------------------------------------------


def test_help_shows_how_rill_is_called() -> None:
    done = rill("--help")
    assert done.returncode == 0
    first = done.stdout.splitlines()[0]
    assert first == "Usage: rill [OPTIONS] [PROMPT]... | rill COMMAND [ARGS]..."
    assert "rill ask" not in first


def test_metavars_are_words_not_types() -> None:
    out = rill("--help").stdout
    assert not re.search(r"<[a-z ]+>|\{text\}|<float range>|<str>", out), out
    assert "--color auto|always|never" in out
    for shown in ("--chat ID", "--option KEY=VALUE", "--total-timeout SECONDS", "--max-tokens N"):
        assert shown in out


def test_the_footer_names_every_command_and_subcommand() -> None:
    footer = " ".join(rill("--help").stdout.split())
    assert " ".join(commands_footer(app).split()) in footer
    root = typer.main.get_command(app)
    ctx = root.make_context("rill", [], resilient_parsing=True)
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        command = root.get_command(ctx, name)  # type: ignore[attr-defined]
        if command is None or command.hidden:
            continue
        assert f"rill {name}" in footer, name
        subs = getattr(command, "commands", {})
        if subs:
            listed = footer.split(f"rill {name} ", 1)[1].split(" ", 1)[0]
            assert set(listed.rstrip(".").split("|")) == {
                n for n, c in subs.items() if not c.hidden
            }, name
    for expected in ("config path|show|get|set|unset", "reindex", "templates list|show|edit|path"):
        assert expected in footer


def test_the_command_groups_help_has_the_same_footer() -> None:
    root = typer.main.get_command(app)
    text = root.get_help(root.make_context("rill", [], resilient_parsing=True))
    assert " ".join(commands_footer(app).split()) in " ".join(text.split())


def test_arguments_are_named_in_capitals_without_braces() -> None:
    for words, usage in [
        (["config", "set"], "Usage: rill config set [OPTIONS] KEY VALUE"),
        (["config", "get"], "Usage: rill config get [OPTIONS] KEY"),
        (["templates", "show"], "Usage: rill templates show [OPTIONS] NAME"),
        (["templates", "path"], "Usage: rill templates path [OPTIONS] [NAME]"),
        (["completions"], "Usage: rill completions [OPTIONS] SHELL"),
    ]:
        done = rill(*words, "--help")
        assert done.stdout.splitlines()[0] == usage
        assert "{" not in done.stdout
