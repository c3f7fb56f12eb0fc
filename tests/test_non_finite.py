"""NaN and infinities are not numbers rill can use: no JSON body can carry them and no time
limit means anything with them. From a flag, ``-o`` or a template they are usage errors (exit 2),
from config.toml configuration errors (exit 3); either way one ``rill:`` line and nothing sent."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run

NOT_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]
FLOAT_FLAGS = [
    "--temperature",
    "--timeout",
    "--connect-timeout",
    "--first-token-timeout",
    "--total-timeout",
]
#: config.toml keys that hold numbers.
NUMERIC_KEYS = ["timeout", "connect_timeout", "first_token_timeout", "total_timeout", "temperature"]


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single ``rill:`` line on stderr (anything else fails the test)."""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: "), result.stderr
    assert b"Traceback" not in result.stderr
    return lines[0]


def ask(server: FakeOpenRouter, *args: str) -> subprocess.CompletedProcess[bytes]:
    return run(["--base-url", server.url, "-m", "fake/echo", *args])


@pytest.mark.parametrize(
    ("flag", "value"), list(zip(FLOAT_FLAGS, ["nan", "-inf", "1e999", "inf", "NaN"], strict=True))
)
def test_a_float_flag_that_is_not_finite_is_a_usage_error(
    fake_server: FakeOpenRouter, flag: str, value: str
) -> None:
    result = ask(fake_server, f"{flag}={value}", "hi")
    assert (result.returncode, result.stdout) == (2, b"")
    line = one_line(result)
    assert flag in line and "finite" in line
    assert fake_server.chat_requests == []


@pytest.mark.parametrize("value", NOT_FINITE)
def test_every_spelling_of_nan_and_infinity_is_refused(
    fake_server: FakeOpenRouter, value: str
) -> None:
    result = ask(fake_server, "--temperature", value, "hi")
    assert result.returncode == 2
    assert "finite" in one_line(result)


def test_finite_numbers_still_pass(fake_server: FakeOpenRouter) -> None:
    result = ask(
        fake_server, "--temperature", "0.5", "--timeout", "0", "--total-timeout", "30", "hi"
    )
    assert (result.returncode, result.stdout) == (0, b"hi")
    assert fake_server.chat_requests[0].body["temperature"] == 0.5


@pytest.mark.parametrize(("flag", "value"), [("--temperature", "nan"), ("--timeout", "inf")])
def test_batch_flags_refuse_them_too(fake_server: FakeOpenRouter, flag: str, value: str) -> None:
    line = b'{"id": 1, "prompt": "hi"}\n'
    result = run(
        ["batch", "--base-url", fake_server.url, "-m", "fake/echo", flag, value], input=line
    )
    assert (result.returncode, result.stdout) == (2, b"")
    assert flag in one_line(result)
    assert fake_server.chat_requests == []


@pytest.mark.parametrize(
    "option", ["temperature=NaN", "temperature=Infinity", "x=[1, -Infinity]", 'x={"a": 1e999}']
)
def test_request_options_that_parse_to_nan_or_infinity_are_usage_errors(
    fake_server: FakeOpenRouter, option: str
) -> None:
    result = ask(fake_server, "-o", option, "hi")
    assert (result.returncode, result.stdout) == (2, b"")
    assert "NaN and Infinity cannot be sent" in one_line(result)
    assert fake_server.chat_requests == []


def test_a_request_option_from_a_file_holding_nan_is_a_usage_error(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    values = tmp_path / "values.json"
    values.write_text('{"bias": NaN}', encoding="utf-8")
    result = ask(fake_server, "-o", f"logit_bias=@{values}", "hi")
    assert result.returncode == 2
    assert "-o logit_bias" in one_line(result)
    # The batch command reads --option the same way.
    batch = run(
        ["batch", "--base-url", fake_server.url, "--option", f"x=@{values}"],
        input=b'{"id": 1, "prompt": "hi"}\n',
    )
    assert batch.returncode == 2
    assert "-o x" in one_line(batch)
    assert fake_server.chat_requests == []


def test_lowercase_nan_is_not_json_and_stays_a_string(fake_server: FakeOpenRouter) -> None:
    # "JSON when it parses": `nan` is not JSON, so it is sent as the text "nan", as before.
    result = ask(fake_server, "-o", "note=nan", "hi")
    assert result.returncode == 0, result.stderr
    assert fake_server.chat_requests[0].body["note"] == "nan"


@pytest.mark.parametrize("options", ["temperature = nan", "provider = { max_price = -inf }"])
def test_a_template_whose_options_hold_nan_or_inf_is_a_usage_error(
    fake_server: FakeOpenRouter, rill_env: Path, options: str
) -> None:
    folder = rill_env / "templates"
    folder.mkdir(parents=True)
    (folder / "odd.toml").write_text(f"[options]\n{options}\n", encoding="utf-8")
    result = ask(fake_server, "-t", "odd", "hi")
    assert (result.returncode, result.stdout) == (2, b"")
    assert "odd.toml" in one_line(result)
    assert fake_server.chat_requests == []


@pytest.mark.parametrize(
    ("key", "value"), list(zip(NUMERIC_KEYS, ["nan", "-inf", "inf", "+nan", "nan"], strict=True))
)
def test_config_set_refuses_nan_and_infinity_and_stores_nothing(
    rill_env: Path, key: str, value: str
) -> None:
    # A bad value on the command line is a bad argument, like `config set timeout true`.
    result = run(["config", "set", key, "--", value])
    assert (result.returncode, result.stdout) == (2, b"")
    assert f"{key} must be a finite number" in one_line(result)
    assert not (rill_env / "config.toml").exists()


def test_config_set_refuses_a_table_holding_nan_and_keeps_the_file(rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    config = rill_env / "config.toml"
    config.write_text('model = "a/b"\n', encoding="utf-8")
    result = run(["config", "set", "provider", "{ max_price = { prompt = nan } }"])
    assert result.returncode == 2
    assert "provider holds nan or inf" in one_line(result)
    assert tomllib.loads(config.read_text(encoding="utf-8")) == {"model": "a/b"}


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_a_config_file_holding_nan_is_a_config_error_at_load(
    fake_server: FakeOpenRouter, rill_env: Path, key: str
) -> None:
    rill_env.mkdir(parents=True)
    (rill_env / "config.toml").write_text(f"{key} = nan\n", encoding="utf-8")
    result = ask(fake_server, "hi")
    assert (result.returncode, result.stdout) == (3, b"")
    line = one_line(result)
    assert "config.toml" in line and f"{key} must be a finite number" in line
    assert fake_server.chat_requests == []


def test_a_config_file_holding_infinity_stops_every_command_that_reads_it(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True)
    (rill_env / "config.toml").write_text(
        "timeout = inf\n[provider]\nmax_price = { prompt = nan }\n", encoding="utf-8"
    )
    for args in (
        ["config", "show"],
        ["config", "get", "timeout"],
        ["--dry-run", "hi"],
        ["batch", "--base-url", fake_server.url],
    ):
        result = run(args, input=b'{"id": 1, "prompt": "hi"}\n')
        assert (result.returncode, result.stdout) == (3, b""), args
        assert "must be a finite number" in one_line(result), args
    assert fake_server.chat_requests == []


def test_dry_run_of_finite_values_is_valid_json(fake_server: FakeOpenRouter) -> None:
    result = ask(fake_server, "--dry-run", "--temperature", "1e-3", "-o", "x=1e308", "hi")
    assert result.returncode == 0
    body = json.loads(result.stdout.split(b"\n\n", 1)[1])
    assert (body["temperature"], body["x"]) == (0.001, 1e308)


@pytest.mark.parametrize("name", ["temperature", "timeout"])
def test_the_library_refuses_them_before_anything_is_sent(
    fake_server: FakeOpenRouter, name: str
) -> None:
    from rill import stream_chat
    from rill.errors import UsageError

    with pytest.raises(UsageError, match=f"^{name} must be a finite number"):
        next(iter(stream_chat("hi", base_url=fake_server.url, **{name: float("nan")})))
    assert fake_server.chat_requests == []
