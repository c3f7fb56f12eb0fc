"""The shipped completions and man page: current with the CLI, valid, and complete.

``scripts/gen_docs.py`` writes them from the command line; these tests fail when the CLI changed
and the files were not regenerated (run ``python scripts/gen_docs.py``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer
from typer.testing import CliRunner

from rill.cli import app
from rill.errors import ExitCode
from rill.output.formats import OutputFormat

ROOT = Path(__file__).resolve().parent.parent
MAN = ROOT / "man" / "rill.1"
LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _load_gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_gen_docs()


@pytest.fixture(scope="module")
def man_text() -> str:
    return MAN.read_text(encoding="utf-8")


def roff_option(option: str) -> str:
    return option.replace("-", "\\-")


# --- current ----------------------------------------------------------------------------------


def test_committed_files_equal_freshly_generated_ones() -> None:
    for path, text in gen_docs.render_all().items():
        committed = (ROOT / path).read_text(encoding="utf-8")
        assert committed == text, f"{path} is stale: run python scripts/gen_docs.py"


def test_check_lists_stale_files_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gen_docs, "ROOT", tmp_path)
    assert gen_docs.main(["--check"]) == 1
    stale = capsys.readouterr().err
    for path in (*gen_docs.COMPLETIONS.values(), gen_docs.MAN_PAGE):
        assert f"stale: {path}" in stale
    assert gen_docs.main([]) == 0
    assert gen_docs.main(["--check"]) == 0
    (tmp_path / gen_docs.MAN_PAGE).write_text("old\n", encoding="utf-8")
    capsys.readouterr()
    assert gen_docs.main(["--check"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"stale: {gen_docs.MAN_PAGE}"


def test_the_script_checks_the_repository() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- valid ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "path"),
    [
        ("bash", "completions/rill.bash"),
        ("zsh", "completions/_rill"),
        ("fish", "completions/rill.fish"),
    ],
)
def test_completion_scripts_parse(shell: str, path: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    done = subprocess.run(
        [exe, "-n", str(ROOT / path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_completion_scripts_come_from_typers_machinery() -> None:
    bash = (ROOT / "completions" / "rill.bash").read_text(encoding="utf-8")
    assert "_RILL_COMPLETE=complete_bash" in bash
    assert "complete -o default -F _rill_completion rill" in bash
    zsh = (ROOT / "completions" / "_rill").read_text(encoding="utf-8")
    assert zsh.startswith("#compdef rill\n")  # compinit reads only the first line
    assert "_RILL_COMPLETE=complete_zsh" in zsh
    fish = (ROOT / "completions" / "rill.fish").read_text(encoding="utf-8")
    assert "_RILL_COMPLETE=complete_fish" in fish


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_rill_completions_prints_the_shipped_script(shell: str) -> None:
    from tests.e2e import run

    done = run(["completions", shell])
    assert (done.returncode, done.stderr) == (0, b"")
    shipped = ROOT / gen_docs.COMPLETIONS[shell]
    assert done.stdout.decode() == shipped.read_text(encoding="utf-8")


def test_rill_completions_refuses_other_shells() -> None:
    from tests.e2e import run

    done = run(["completions", "tcsh"])
    assert done.returncode == 2 and done.stdout == b""
    assert b"(see rill completions --help)" in done.stderr


def test_groff_finds_nothing_to_warn_about() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    done = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(MAN)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_man_renders_it() -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"}
    done = subprocess.run(
        ["man", "-l", str(MAN)], capture_output=True, text=True, timeout=30, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "RILL(1)" in done.stdout and "EXIT STATUS" in done.stdout


# --- complete ---------------------------------------------------------------------------------


def test_every_long_option_of_rill_help_is_in_the_man_page(man_text: str) -> None:
    result = CliRunner().invoke(app, ["--help"], prog_name="rill")
    assert result.exit_code == 0
    options = set(LONG_OPTION.findall(result.stdout))
    assert {"--model", "--format", "--dry-run", "--template", "--param"} <= options
    missing = sorted(o for o in options if roff_option(o) not in man_text)
    assert not missing, f"not in man/rill.1: {missing}"


def test_every_subcommand_and_its_options_are_in_the_man_page(man_text: str) -> None:
    root = typer.main.get_command(app)
    ctx = gen_docs.context(root, "rill")
    commands = list(gen_docs.walk(root, ctx, []))
    assert {"models", "config", "templates", "history"} <= {words[0] for words, _, _ in commands}
    for words, _command, _ctx in commands:
        assert f'.SS "rill {" ".join(words)}' in man_text
        result = CliRunner().invoke(app, [*words, "--help"], prog_name="rill")
        assert result.exit_code == 0, words
        for option in set(LONG_OPTION.findall(result.stdout)) - {"--help"}:
            assert roff_option(option) in man_text, (words, option)


def test_option_help_is_read_from_the_cli(man_text: str) -> None:
    root = typer.main.get_command(app)
    ask = root.get_command(gen_docs.context(root, "rill"), "ask")
    helps = [p.help for p in ask.params if getattr(p, "help", None)]
    assert len(helps) > 20
    for text in helps:
        assert gen_docs.paragraph(text) in man_text, text


def test_sections_are_all_there(man_text: str) -> None:
    sections = re.findall(r"^\.SH (.+)$", man_text, re.M)
    for name in (
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "OUTPUT FORMATS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
    ):
        assert name in sections
    assert man_text.startswith('.\\" Generated by scripts/gen_docs.py')


def test_exit_status_lists_every_code(man_text: str) -> None:
    section = man_text.split(".SH EXIT STATUS", 1)[1].split(".SH ", 1)[0]
    codes = [int(c) for c in re.findall(r"^\.TP\n\\fB(\d+)\\fR", section, re.M)]
    assert codes == [int(c) for c in ExitCode]
    assert {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 74, 130, 141, 143} == set(codes)


def test_output_formats_environment_and_files_are_described(man_text: str) -> None:
    for fmt in OutputFormat:
        assert f".TP\n\\fB{fmt.value}\\fR\n" in man_text
    for name in ("OPENROUTER_API_KEY", "RILL_MODEL", "RILL_BASE_URL", "RILL_HOME", "NO_COLOR"):
        assert f".TP\n\\fB{name}\\fR\n" in man_text
    for name in ("FORCE_COLOR", "RILL_DEBUG"):
        assert f"\\fB{name}\\fR" in man_text
    for name in ("config.toml", "history/", "cache/", "templates/"):
        assert f".TP\n\\fI{name}\\fR\n" in man_text


def test_roff_escaping() -> None:
    assert gen_docs.roff("use --no-history or -m x") == "use \\-\\-no\\-history or \\-m x"
    assert gen_docs.roff("OpenAI-compatible") == "OpenAI-compatible"
    assert gen_docs.roff("a \\ b") == "a \\e b"
    assert gen_docs.roff(".starts with a dot") == "\\&.starts with a dot"
    assert gen_docs.roff("rill -- history · x - y") == "rill \\-\\- history \\[u00B7] x \\- y"
