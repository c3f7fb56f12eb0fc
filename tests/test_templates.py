"""Templates end to end (``-t NAME``, ``-p KEY VALUE``), seen through ``--dry-run``, and the
``rill templates list|show|edit|path`` commands."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rill.cli import app
from rill.commands.templates import skeleton
from rill.input.prompting import load_template
from tests.e2e import run

REVIEW = """\
system = "You review {{language}} code."
prompt = "Review this {{kind}}:"
model = "t/reviewer"

[options]
temperature = 0.2
provider = { order = ["a", "b"] }
"""


def rill(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


def templates_dir(home: Path) -> Path:
    return home / "templates"


def write_template(home: Path, name: str, text: str) -> Path:
    folder = templates_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def request_body(stdout: str) -> dict[str, Any]:
    """The JSON body of a ``--dry-run`` print-out (after the headers and a blank line)."""
    return dict(json.loads(stdout.split("\n\n", 1)[1]))


def sent(*args: str, input: str | None = None) -> dict[str, Any]:
    result = rill("--dry-run", *args, input=input)
    assert result.exit_code == 0, result.output
    return request_body(result.stdout)


# --- -t and -p through the prompt command -------------------------------------------------------


def test_placeholders_model_and_options_come_from_the_template(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    body = sent("-t", "review", "-p", "language", "Python", "-p", "kind", "diff")
    assert body["model"] == "t/reviewer"
    assert body["messages"] == [
        {"role": "system", "content": "You review Python code."},
        {"role": "user", "content": "Review this diff:"},
    ]
    assert body["temperature"] == 0.2
    assert body["provider"] == {"order": ["a", "b"]}


def test_prompt_words_then_stdin_follow_the_template_after_blank_lines(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    body = sent(
        "-t", "review", "-p", "language", "Go", "-p", "kind=patch", "be", "brief",
        input="+ added line\n",
    )  # fmt: skip
    assert body["messages"][-1] == {
        "role": "user",
        "content": "Review this patch:\n\nbe brief\n\n+ added line\n",
    }


def test_stdin_alone_follows_the_template(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    body = sent("-t", "review", "-p", "language", "C", "-p", "kind", "file", input="int x;")
    assert body["messages"][-1]["content"] == "Review this file:\n\nint x;"


def test_a_template_without_a_prompt_sends_the_users_words(rill_env: Path) -> None:
    write_template(rill_env, "terse", 'system = "Answer in one line."\n')
    body = sent("-t", "terse", "what", "is", "TOML?")
    assert body["messages"] == [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "what is TOML?"},
    ]


def test_the_command_line_wins_over_the_template(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    body = sent(
        "-t", "review", "-p", "language", "Rust", "-p", "kind", "crate",
        "-m", "flag/model", "-s", "Flag system.", "-o", "temperature=0.9",
    )  # fmt: skip
    assert body["model"] == "flag/model"
    assert body["messages"][0] == {"role": "system", "content": "Flag system."}
    assert body["temperature"] == 0.9
    assert body["provider"] == {"order": ["a", "b"]}


def test_a_placeholder_value_is_inserted_verbatim(rill_env: Path) -> None:
    write_template(rill_env, "echo", 'prompt = "<{{ text }}>"\n')
    body = sent("-t", "echo", "-p", "text", "{{other}} & $HOME")
    assert body["messages"][-1]["content"] == "<{{other}} & $HOME>"


def test_a_missing_placeholder_exits_2_naming_it(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    done = run(["-t", "review", "-p", "language", "Python", "--dry-run", "hi"], env=os.environ)
    assert done.returncode == 2
    assert done.stdout == b""
    message = done.stderr.decode()
    assert message.startswith("rill: ") and len(message.splitlines()) == 1
    assert "kind" in message and "language" not in message


def test_an_unknown_template_exits_2(rill_env: Path) -> None:
    done = run(["-t", "nope", "--dry-run", "hi"], env=os.environ)
    assert done.returncode == 2
    assert "no template named 'nope'" in done.stderr.decode()


# --- rill templates ---------------------------------------------------------------------------


def test_path_prints_the_folder_or_one_file(rill_env: Path) -> None:
    assert rill("templates", "path").stdout == f"{templates_dir(rill_env)}\n"
    assert rill("templates", "path", "x").stdout == f"{templates_dir(rill_env) / 'x.toml'}\n"
    bad = rill("templates", "path", "../escape")
    assert bad.exit_code == 2 and "invalid template name" in bad.stderr


def test_list_shows_name_model_and_placeholders(rill_env: Path) -> None:
    assert rill("templates", "list").stdout == ""
    write_template(rill_env, "review", REVIEW)
    write_template(rill_env, "terse", 'system = "Answer in one line."\n')
    write_template(rill_env, "broken", "prompt = [\n")
    result = rill("templates", "list")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "broken\t-\t-",
        "review\tt/reviewer\tlanguage kind",
        "terse\t-\t-",
    ]
    assert "broken.toml is not valid TOML" in result.stderr


def test_show_prints_the_file_as_it_is(rill_env: Path) -> None:
    write_template(rill_env, "review", REVIEW)
    result = rill("templates", "show", "review")
    assert (result.exit_code, result.stdout) == (0, REVIEW)
    missing = rill("templates", "show", "nope")
    assert missing.exit_code == 2 and "no template named 'nope'" in missing.stderr


@pytest.fixture
def editor(tmp_path: Path) -> Path:
    """An editor that appends the text in $EDIT_APPEND and exits with $EDIT_STATUS."""
    script = tmp_path / "fake-editor.py"
    script.write_text(
        "import os, sys\n"
        "with open(sys.argv[-1], 'a', encoding='utf-8') as f:\n"
        "    f.write(os.environ.get('EDIT_APPEND', ''))\n"
        "sys.exit(int(os.environ.get('EDIT_STATUS', '0')))\n",
        encoding="utf-8",
    )
    return script


def editor_env(script: Path, append: str = "", status: int = 0, var: str = "EDITOR") -> dict:
    return {
        var: f"{sys.executable} {script}",
        "EDIT_APPEND": append,
        "EDIT_STATUS": str(status),
    }


def test_edit_creates_a_template_from_the_skeleton(rill_env: Path, editor: Path) -> None:
    env = editor_env(editor, 'prompt = "Translate to {{lang}}:"\n')
    result = rill("templates", "edit", "translate", env={**env, "VISUAL": ""})
    assert result.exit_code == 0, result.output
    text = (templates_dir(rill_env) / "translate.toml").read_text(encoding="utf-8")
    assert text.startswith(skeleton("translate"))
    assert load_template(templates_dir(rill_env), "translate").placeholders() == ["lang"]
    body = sent("-t", "translate", "-p", "lang", "French", "good", "morning")
    assert body["messages"][-1]["content"] == "Translate to French:\n\ngood morning"


def test_visual_wins_over_editor(rill_env: Path, editor: Path) -> None:
    env = {**editor_env(editor, 'model = "v/m"\n', var="VISUAL"), "EDITOR": "false"}
    assert rill("templates", "edit", "v", env=env).exit_code == 0
    assert load_template(templates_dir(rill_env), "v").model == "v/m"


def test_edit_keeps_an_existing_file(rill_env: Path, editor: Path) -> None:
    path = write_template(rill_env, "review", REVIEW)
    env = {**editor_env(editor, "# reviewed\n"), "VISUAL": ""}
    assert rill("templates", "edit", "review", env=env).exit_code == 0
    assert path.read_text(encoding="utf-8") == REVIEW + "# reviewed\n"


def test_an_untouched_skeleton_is_not_kept(rill_env: Path, editor: Path) -> None:
    result = rill("templates", "edit", "empty", env={**editor_env(editor), "VISUAL": ""})
    assert result.exit_code == 0
    assert not (templates_dir(rill_env) / "empty.toml").exists()
    assert "not saved" in result.stderr


def test_an_editor_failure_exits_1_and_keeps_the_file(rill_env: Path, editor: Path) -> None:
    env = {**editor_env(editor, 'prompt = "x"\n', status=3), "VISUAL": ""}
    result = rill("templates", "edit", "t", env=env)
    assert result.exit_code == 1
    assert "status 3" in result.stderr
    assert (templates_dir(rill_env) / "t.toml").exists()


def test_a_missing_editor_is_a_config_error(rill_env: Path, tmp_path: Path) -> None:
    env = {"VISUAL": "", "EDITOR": str(tmp_path / "no-such-editor")}
    result = rill("templates", "edit", "t", env=env)
    assert result.exit_code == 3
    assert "cannot run the editor" in result.stderr


def test_an_invalid_template_after_editing_exits_2(rill_env: Path, editor: Path) -> None:
    env = {**editor_env(editor, "prompt = [\n"), "VISUAL": ""}
    result = rill("templates", "edit", "bad", env=env)
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr


def test_the_skeleton_is_valid_toml_with_every_key_commented_out() -> None:
    text = skeleton("x")
    assert tomllib.loads(text) == {}
    assert "rill -t x" in text
    for key in ("system", "prompt", "model", "[options]"):
        assert f"# {key}" in text
