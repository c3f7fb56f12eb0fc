"""``rill config path|show|get|set|unset``: TOML values, validation, aliases, a private file."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rill.cli import app


def rill(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def config_file(home: Path) -> Path:
    return home / "config.toml"


def read(home: Path) -> dict[str, object]:
    return tomllib.loads(config_file(home).read_text(encoding="utf-8"))


def dry_run_body(*args: str) -> dict[str, object]:
    result = rill("--dry-run", *args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout.split("\n\n", 1)[1]))


def test_path_is_config_toml_in_rill_home(rill_env: Path) -> None:
    result = rill("config", "path")
    assert (result.exit_code, result.stdout) == (0, f"{config_file(rill_env)}\n")


def test_path_follows_xdg_without_rill_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("RILL_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert rill("config", "path").stdout == f"{tmp_path / 'xdg' / 'rill' / 'config.toml'}\n"


@pytest.mark.parametrize(
    ("key", "typed", "stored", "shown"),
    [
        ("timeout", "30", 30, "30"),
        ("temperature", "0.5", 0.5, "0.5"),
        ("stats", "true", True, "true"),
        ("model", "openai/gpt-4o", "openai/gpt-4o", "openai/gpt-4o"),
        ("model", '"quoted/model"', "quoted/model", "quoted/model"),
        ("system", "1984", "1984", "1984"),  # a string key keeps the words as typed
        ("system", "Be brief. Use [lists].", "Be brief. Use [lists].", "Be brief. Use [lists]."),
        ("history_format", "toml", "toml", "toml"),
        ("base_url", "http://localhost:8080/v1", "http://localhost:8080/v1", None),
    ],
)
def test_set_then_get(
    rill_env: Path, key: str, typed: str, stored: object, shown: str | None
) -> None:
    result = rill("config", "set", key, typed)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert read(rill_env) == {key: stored}
    assert rill("config", "get", key).stdout == f"{shown or stored}\n"


def test_get_of_a_key_without_any_value_exits_0_printing_nothing(rill_env: Path) -> None:
    # Exit 1 is reserved for internal errors; a key without a value is an empty answer.
    result = rill("config", "get", "system")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    rill("config", "set", "model", "a/b")
    result = rill("config", "get", "aliases.fast")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert rill("config", "get", "no_such_key").exit_code == 2  # an unknown key is a usage error


def test_get_prints_the_value_in_effect_with_its_origin(
    rill_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RILL_MODEL", raising=False)
    monkeypatch.delenv("RILL_BASE_URL", raising=False)
    assert rill("config", "get", "retries").stdout == "2\n"  # the default, not an empty line
    assert rill("config", "get", "retries", "--show-origin").stdout == "default\t2\n"
    assert rill("config", "get", "timeout").stdout == "60.0\n"
    assert rill("config", "get", "model").stdout == "openrouter/auto\n"
    rill("config", "set", "retries", "5")
    origin = rill("config", "get", "--show-origin", "retries").stdout
    assert origin == f"config file {config_file(rill_env)}\t5\n"
    rill("config", "set", "model", "a/b")
    monkeypatch.setenv("RILL_MODEL", "c/d")
    assert rill("config", "get", "model", "--show-origin").stdout == "environment RILL_MODEL\tc/d\n"


def test_get_of_the_api_key_is_redacted(rill_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-or-v1-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("OPENROUTER_API_KEY", key)
    result = rill("config", "get", "api_key", "--show-origin")
    assert result.exit_code == 0
    assert result.stdout.startswith("environment OPENROUTER_API_KEY\t")
    assert key not in result.stdout


def test_set_keeps_other_keys_and_tables(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config_file(rill_env).write_text(
        'model = "a/b"\nretries = 4\n\n[aliases]\nfast = "x/fast"\n', encoding="utf-8"
    )
    assert rill("config", "set", "timeout", "12.5").exit_code == 0
    assert read(rill_env) == {
        "model": "a/b",
        "retries": 4,
        "timeout": 12.5,
        "aliases": {"fast": "x/fast"},
    }


def test_aliases_live_in_the_aliases_table(rill_env: Path) -> None:
    assert rill("config", "set", "aliases.fast", "openai/gpt-4o-mini").exit_code == 0
    assert rill("config", "set", "aliases.smart", "anthropic/claude-sonnet-4").exit_code == 0
    assert read(rill_env) == {
        "aliases": {"fast": "openai/gpt-4o-mini", "smart": "anthropic/claude-sonnet-4"}
    }
    assert rill("config", "get", "aliases.fast").stdout == "openai/gpt-4o-mini\n"
    table = rill("config", "get", "aliases").stdout
    assert tomllib.loads(table) == read(rill_env)["aliases"]
    assert rill("config", "unset", "aliases.fast").exit_code == 0
    assert read(rill_env) == {"aliases": {"smart": "anthropic/claude-sonnet-4"}}
    assert rill("config", "unset", "aliases.smart").exit_code == 0
    assert read(rill_env) == {}  # an empty table is dropped


def test_an_alias_set_here_is_used_by_the_prompt_command(rill_env: Path) -> None:
    rill("config", "set", "aliases.fast", "openai/gpt-4o-mini")
    assert dry_run_body("-m", "fast", "hi")["model"] == "openai/gpt-4o-mini"
    rill("config", "set", "model", "fast")
    assert dry_run_body("hi")["model"] == "openai/gpt-4o-mini"


def test_a_model_set_here_is_below_the_environment_and_flags(
    rill_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rill("config", "set", "model", "from/config")
    assert dry_run_body("hi")["model"] == "from/config"
    monkeypatch.setenv("RILL_MODEL", "from/env")
    assert dry_run_body("hi")["model"] == "from/env"
    assert dry_run_body("-m", "from/flag", "hi")["model"] == "from/flag"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("set", "colour", "always"), "unknown config key 'colour'"),
        (("set", "model.name", "x"), "unknown config key 'model.name'"),
        (("get", "nope"), "unknown config key 'nope'"),
        (("unset", "nope"), "unknown config key 'nope'"),
        (("set", "retries", "many"), "retries must be int"),
        (("set", "timeout", "true"), "timeout must be int or float"),
        (("set", "stats", "yes"), "stats must be bool"),
        (("set", "history_format", "xml"), "history_format must be one of json, toml"),
        (("set", "color", "sometimes"), "color must be one of auto, always, never"),
        (("set", "--", "retries", "-1"), "retries must not be negative"),
        (("set", "aliases", "fast"), "aliases must be dict"),
    ],
)
def test_unknown_keys_and_bad_values_are_usage_errors(
    rill_env: Path, args: tuple[str, ...], words: str
) -> None:
    result = rill("config", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: ") and words in lines[0]
    assert not config_file(rill_env).exists()


def test_a_broken_file_is_a_config_error_and_is_left_alone(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config_file(rill_env).write_text("model = [unclosed\n", encoding="utf-8")
    for args in (("set", "retries", "3"), ("get", "model"), ("show",), ("unset", "model")):
        result = rill("config", *args)
        assert result.exit_code == 3, args
        assert "is not valid TOML" in result.stderr
    assert config_file(rill_env).read_text(encoding="utf-8") == "model = [unclosed\n"


def test_the_file_is_created_private(rill_env: Path) -> None:
    assert rill("config", "set", "api_key", "sk-or-v1-secret-secret-secret").exit_code == 0
    assert stat.S_IMODE(config_file(rill_env).stat().st_mode) == 0o600
    assert sorted(p.name for p in rill_env.iterdir()) == ["config.toml"]  # no temporary left


def test_a_file_readable_by_others_becomes_private(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config_file(rill_env).write_text('model = "a/b"\n', encoding="utf-8")
    os.chmod(config_file(rill_env), 0o644)
    assert rill("config", "set", "retries", "1").exit_code == 0
    assert stat.S_IMODE(config_file(rill_env).stat().st_mode) == 0o600


def test_a_key_set_here_is_used_and_shown_redacted(
    rill_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-or-v1-0123456789abcdef0123456789abcdef"
    monkeypatch.delenv("OPENROUTER_API_KEY")
    assert rill("config", "set", "api_key", key).exit_code == 0
    result = rill("--dry-run", "hi")
    assert result.exit_code == 0, result.output
    assert "Authorization: Bearer sk-or-" in result.stdout
    assert key not in result.stdout and "warning" not in result.stderr
    shown = rill("config", "show")
    assert key not in shown.stdout and "REDACTED" in shown.stdout


def test_show_prints_the_settings_as_toml(rill_env: Path) -> None:
    rill("config", "set", "model", "a/b")
    rill("config", "set", "aliases.fast", "c/d")
    result = rill("config", "show")
    assert result.exit_code == 0
    assert tomllib.loads(result.stdout) == {"model": "a/b", "aliases": {"fast": "c/d"}}


def test_show_without_a_file_says_so_on_stderr(rill_env: Path) -> None:
    result = rill("config", "show")
    assert (result.exit_code, result.stdout) == (0, "")
    assert str(config_file(rill_env)) in result.stderr


def test_show_reports_an_invalid_value(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config_file(rill_env).write_text('retries = "many"\n', encoding="utf-8")
    result = rill("config", "show")
    assert result.exit_code == 3
    assert "retries must be int" in result.stderr


def test_unset_removes_a_key_and_is_quiet_when_there_is_none(rill_env: Path) -> None:
    rill("config", "set", "model", "a/b")
    rill("config", "set", "retries", "3")
    assert rill("config", "unset", "model").exit_code == 0
    assert read(rill_env) == {"retries": 3}
    result = rill("config", "unset", "model")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert rill("config", "unset", "aliases.none").exit_code == 0


def test_unset_can_remove_a_key_rill_does_not_know(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config_file(rill_env).write_text('colour = "always"\nmodel = "a/b"\n', encoding="utf-8")
    assert rill("config", "unset", "colour").exit_code == 0
    assert read(rill_env) == {"model": "a/b"}


def test_a_symlinked_config_stays_a_symlink(rill_env: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "rill.toml"
    real.write_text('model = "a/b"\n', encoding="utf-8")
    rill_env.mkdir(parents=True)
    config_file(rill_env).symlink_to(real)
    assert rill("config", "set", "retries", "2").exit_code == 0
    assert config_file(rill_env).is_symlink()
    assert tomllib.loads(real.read_text(encoding="utf-8")) == {"model": "a/b", "retries": 2}


def test_config_without_a_subcommand_shows_help() -> None:
    result = rill("config")
    assert result.exit_code == 2
    for word in ("path", "show", "get", "set", "unset"):
        assert word in result.output
