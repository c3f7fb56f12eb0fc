"""``rill models``: the table, --json, --search, the one-hour cache, and the exit codes of errors.

Listing runs against the fake server (an OpenRouter-style list, or a generic OpenAI-compatible
one); error statuses come from an ``httpx.MockTransport`` handed in through ``obj``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from rill.cli import app
from rill.config.models import format_price, model_row, parse_models, per_million, read_cache
from rill.fake import FakeOpenRouter
from tests.e2e import closed_stdout

OPENROUTER = "https://openrouter.ai/api/v1"


def rill(*args: str, transport: httpx.BaseTransport | None = None) -> Result:
    obj = {"transport": transport} if transport is not None else None
    return CliRunner().invoke(app, list(args), obj=obj)


def model_requests(server: FakeOpenRouter) -> int:
    return sum(r.path.endswith("/models") for r in server.requests)


def cache_file(home: Path) -> Path:
    return home / "cache" / "models.json"


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


# --- listing ----------------------------------------------------------------------------------


def test_table_in_a_pipe_is_tab_separated_with_prices_per_million(fake_server: Any) -> None:
    result = rill("models", "--base-url", fake_server.url)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [
        ["anthropic/claude-sonnet-4", "1000000", "3", "15"],
        ["deepseek/deepseek-r1", "163840", "0.4", "2"],
        ["google/gemini-2.5-flash", "1048576", "0.3", "2.5"],
        ["meta-llama/llama-3.3-70b-instruct:free", "65536", "0", "0"],
        ["openai/gpt-4o", "128000", "2.5", "10"],
    ]
    assert result.stderr == ""


def test_generic_openai_compatible_list_shows_unknown_prices(fake_server: Any) -> None:
    fake_server.models_style = "generic"
    result = rill("models", "--base-url", fake_server.openai_url)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert ["openai/gpt-4o", "-", "-", "-"] in rows
    assert len(rows) == 5


def test_json_prints_the_model_objects_as_received(fake_server: Any) -> None:
    result = rill("models", "--base-url", fake_server.url, "--json")
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)
    by_id = {m["id"]: m for m in models}
    served = {m["id"]: m for m in fake_server.models}
    assert by_id == served
    assert [m["id"] for m in models] == sorted(by_id)


def test_search_matches_id_or_name_case_insensitively(fake_server: Any) -> None:
    result = rill("models", "--base-url", fake_server.url, "--search", "CLAUDE")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "anthropic/claude-sonnet-4"
    ]
    by_name = rill("models", "--base-url", fake_server.url, "--search", "gemini flash")
    assert by_name.stdout.startswith("google/gemini-2.5-flash\t")
    as_json = rill("models", "--base-url", fake_server.url, "--search", "llama", "--json")
    assert [m["id"] for m in json.loads(as_json.stdout)] == [
        "meta-llama/llama-3.3-70b-instruct:free"
    ]


def test_search_without_hits_exits_0_quietly(fake_server: Any) -> None:
    # Exit 1 is reserved for internal errors: finding nothing is a normal, empty answer.
    result = rill("models", "--base-url", fake_server.url, "--search", "no-such-model")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    result = rill("models", "--base-url", fake_server.url, "--search", "no-such", "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_closed_stdout_ends_quietly_with_141(fake_server: Any, extra: list[str]) -> None:
    done = closed_stdout("models", "--base-url", fake_server.url, *extra)  # `rill models | head`
    assert (done.returncode, done.stderr.decode()) == (141, "")


def test_table_on_a_terminal_has_a_header(
    fake_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rill.commands.models.stdout_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "160")
    result = rill("models", "--base-url", fake_server.url)
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].split() == ["ID", "CONTEXT", "PRICE"]
    assert lines[1].split(None, 2) == [
        "anthropic/claude-sonnet-4",
        "1000000",
        "$3/M input · $15/M output",
    ]
    assert lines[4].split(None, 2) == ["meta-llama/llama-3.3-70b-instruct:free", "65536", "free"]


def test_ids_are_never_read_as_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rill.commands.models.stdout_is_terminal", lambda: True)
    body = {"data": [{"id": "[bold]odd[/bold]", "pricing": {"prompt": "0.000001"}}]}
    result = rill(
        "models",
        "--base-url",
        OPENROUTER,
        transport=mock(lambda request: httpx.Response(200, json=body)),
    )
    assert "[bold]odd[/bold]" in result.stdout


# --- the key ----------------------------------------------------------------------------------


def test_no_key_is_needed_even_for_openrouter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [{"id": "a/b"}]})

    result = rill("models", transport=mock(handler))
    assert result.exit_code == 0, result.output
    assert result.stdout == "a/b\t-\t-\t-\n"
    assert str(seen[0].url) == f"{OPENROUTER}/models"
    assert seen[0].method == "GET"
    assert "authorization" not in seen[0].headers
    assert seen[0].headers["x-title"] == "rill"


def test_the_key_is_sent_when_set(fake_server: Any) -> None:
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    request = fake_server.last_request
    assert request.headers["authorization"] == f"Bearer {fake_server.api_key}"


def test_the_key_never_travels_over_plain_http_to_a_remote_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    result = rill("models", "--base-url", "http://example.com/v1", transport=mock(handler))
    assert result.exit_code == 3
    assert "plain http" in result.stderr


# --- the cache --------------------------------------------------------------------------------


def test_cache_has_the_documented_shape_and_is_private(fake_server: Any, rill_env: Path) -> None:
    before = time.time()
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    path = cache_file(rill_env)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert set(record) == {"fetched_at", "base_url", "data"}
    assert record["base_url"] == fake_server.url
    assert before - 1 <= record["fetched_at"] <= time.time() + 1
    assert [m["id"] for m in record["data"]] == [m["id"] for m in fake_server.models]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["models.json"]  # no temporary left


def test_a_fresh_cache_is_reused_and_refresh_fetches_again(fake_server: Any) -> None:
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    first = rill("models", "--base-url", fake_server.url, "--json")
    assert model_requests(fake_server) == 1
    fake_server.models = fake_server.models[:1]
    again = rill("models", "--base-url", fake_server.url, "--json")
    assert again.stdout == first.stdout
    assert model_requests(fake_server) == 1
    refreshed = rill("models", "--base-url", fake_server.url, "--refresh")
    assert model_requests(fake_server) == 2
    assert refreshed.stdout.splitlines() == ["openai/gpt-4o\t128000\t2.5\t10"]


def test_a_cache_older_than_an_hour_is_fetched_again(fake_server: Any, rill_env: Path) -> None:
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    path = cache_file(rill_env)
    record = json.loads(path.read_text(encoding="utf-8"))
    record["fetched_at"] -= 3601
    path.write_text(json.dumps(record), encoding="utf-8")
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    assert model_requests(fake_server) == 2


def test_a_cache_for_another_base_url_is_not_reused(fake_server: Any, rill_env: Path) -> None:
    path = cache_file(rill_env)
    path.parent.mkdir(parents=True)
    record = {"fetched_at": int(time.time()), "base_url": "http://elsewhere/v1", "data": []}
    path.write_text(json.dumps(record), encoding="utf-8")
    result = rill("models", "--base-url", fake_server.url)
    assert model_requests(fake_server) == 1
    assert len(result.stdout.splitlines()) == 5
    assert json.loads(path.read_text(encoding="utf-8"))["base_url"] == fake_server.url


def test_a_corrupt_cache_is_replaced(fake_server: Any, rill_env: Path) -> None:
    path = cache_file(rill_env)
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    assert rill("models", "--base-url", fake_server.url).exit_code == 0
    assert json.loads(path.read_text(encoding="utf-8"))["base_url"] == fake_server.url


def test_an_unwritable_cache_only_warns(fake_server: Any, rill_env: Path) -> None:
    rill_env.mkdir(parents=True)
    (rill_env / "cache").write_text("a file where the folder should be", encoding="utf-8")
    result = rill("models", "--base-url", fake_server.url)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 5
    assert "cannot write the models cache" in result.stderr


def test_read_cache_rejects_timestamps_from_the_future(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    now = time.time()
    path.write_text(json.dumps({"fetched_at": now + 600, "base_url": "u", "data": []}))
    assert read_cache(path, "u", now=now) is None
    path.write_text(json.dumps({"fetched_at": now - 10, "base_url": "u", "data": [{"id": "x"}]}))
    cached = read_cache(path, "u", now=now)
    assert cached is not None and cached.from_cache and cached.models == [{"id": "x"}]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "words"),
    [
        (401, {"error": {"code": 401, "message": "User not found."}}, 4, "User not found."),
        (403, {"error": {"code": 403, "message": "Forbidden here"}}, 4, "Forbidden here"),
        (402, {"error": {"code": 402, "message": "Insufficient credits"}}, 5, "Insufficient"),
        (429, {"error": {"code": 429, "message": "Rate limit exceeded"}}, 6, "Rate limit"),
        (500, {"error": {"code": 500, "message": "Internal Server Error"}}, 7, "Internal"),
        (502, "<html><title>502 Bad Gateway</title></html>", 7, "502 Bad Gateway"),
    ],
)
def test_http_errors_map_to_rills_exit_codes(
    status: int, body: Any, code: int, words: str, rill_env: Path
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers={"content-type": "text/html"})
        return httpx.Response(status, json=body)

    result = rill("models", "--base-url", OPENROUTER, transport=mock(handler))
    assert result.exit_code == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rill: ")
    assert words in lines[0]
    assert not cache_file(rill_env).exists()


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("Connection refused"), httpx.ConnectTimeout("slow"), httpx.ReadTimeout("")],
)
def test_network_errors_exit_8(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    result = rill("models", "--base-url", OPENROUTER, transport=mock(handler))
    assert result.exit_code == 8
    assert result.stderr.startswith("rill: ") and "openrouter.ai" in result.stderr


def test_a_refused_connection_exits_8(unused_port: int) -> None:
    result = rill("models", "--base-url", f"http://127.0.0.1:{unused_port}/v1")
    assert result.exit_code == 8
    assert "cannot connect to 127.0.0.1" in result.stderr


@pytest.mark.parametrize("text", ["not json at all", '{"object": "list"}'])
def test_an_answer_that_is_not_a_model_list_exits_7(text: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=text)

    result = rill("models", "--base-url", OPENROUTER, transport=mock(handler))
    assert result.exit_code == 7
    assert "/models" in result.stderr


def test_the_key_is_never_shown_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-or-v1-0123456789abcdef0123456789"
    monkeypatch.setenv("OPENROUTER_API_KEY", key)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": 401, "message": f"bad key {key}"}})

    result = rill("models", "--base-url", OPENROUTER, transport=mock(handler))
    assert result.exit_code == 4
    assert key not in result.stderr and "REDACTED" in result.stderr


def test_the_installed_command_exits_8_without_a_server(unused_port: int) -> None:
    from tests.e2e import run

    done = run(["models", "--base-url", f"http://127.0.0.1:{unused_port}/v1"], env=os.environ)
    assert done.returncode == 8
    assert done.stdout == b""
    assert done.stderr.decode().startswith("rill: cannot connect")


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the pieces -------------------------------------------------------------------------------


def test_prices_are_exact_per_million() -> None:
    assert per_million("0.000003") == Decimal("3")
    assert format_price(per_million("0.0000025")) == "2.5"
    assert format_price(per_million("0.0000000375")) == "0.0375"
    assert format_price(per_million("0.00012")) == "120"
    assert format_price(per_million("0")) == "0"
    assert format_price(per_million(0.000001)) == "1"
    assert format_price(per_million("-1")) == "-"  # OpenRouter's "varies" (openrouter/auto)
    assert format_price(per_million("n/a")) == "-"
    assert format_price(per_million(None)) == "-"


def test_model_row_reads_what_each_dialect_offers() -> None:
    openrouter = {
        "id": "x/y",
        "context_length": None,
        "top_provider": {"context_length": 32768},
        "pricing": {"prompt": "0.000001", "completion": "0.000002"},
    }
    row = model_row(openrouter)
    assert (row.id, row.context_length) == ("x/y", 32768)
    assert (row.prompt_price, row.completion_price) == (Decimal(1), Decimal(2))
    vllm = model_row({"id": "m", "object": "model", "max_model_len": 4096})
    assert (vllm.context_length, vllm.prompt_price) == (4096, None)
    generic = model_row({"id": "g", "object": "model", "created": 0, "owned_by": "me"})
    assert (generic.context_length, generic.prompt_price, generic.completion_price) == (
        None,
        None,
        None,
    )


def test_parse_models_accepts_a_bare_list_and_skips_entries_without_an_id() -> None:
    assert parse_models('[{"id": "a"}, {"name": "no id"}, 3]') == [{"id": "a"}]
    assert parse_models('{"object": "list", "data": [{"id": "b"}]}') == [{"id": "b"}]


def test_a_hostile_id_cannot_break_the_tab_separated_rows() -> None:
    body = {"data": [{"id": "evil\tid\n\x1b[31mred"}, {"id": "ok"}]}
    result = rill(
        "models",
        "--base-url",
        OPENROUTER,
        transport=mock(lambda request: httpx.Response(200, json=body)),
    )
    assert result.stdout.splitlines() == ["evil id  [31mred\t-\t-\t-", "ok\t-\t-\t-"]


# --- choosing and ordering ---------------------------------------------------------------------


def listed(server: Any, *args: str) -> list[str]:
    result = rill("models", "--base-url", server.url, *args)
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_free_shows_only_models_that_cost_nothing(fake_server: Any) -> None:
    assert listed(fake_server, "--free") == ["meta-llama/llama-3.3-70b-instruct:free"]


@pytest.mark.parametrize(
    ("feature", "ids"),
    [
        (
            "tools",
            [
                "anthropic/claude-sonnet-4",
                "google/gemini-2.5-flash",
                "meta-llama/llama-3.3-70b-instruct:free",
                "openai/gpt-4o",
            ],
        ),
        (
            "reasoning",
            ["anthropic/claude-sonnet-4", "deepseek/deepseek-r1", "google/gemini-2.5-flash"],
        ),
        ("structured_outputs", []),
        (
            "image",
            ["anthropic/claude-sonnet-4", "google/gemini-2.5-flash", "openai/gpt-4o"],
        ),
        ("file", ["anthropic/claude-sonnet-4", "google/gemini-2.5-flash"]),
        ("audio", ["google/gemini-2.5-flash"]),
    ],
)
def test_supports_reads_parameters_and_input_modalities(
    fake_server: Any, feature: str, ids: list[str]
) -> None:
    assert listed(fake_server, "--supports", feature) == ids


def test_supports_repeated_needs_every_feature_and_combines_with_free(fake_server: Any) -> None:
    both = listed(fake_server, "--supports", "reasoning", "--supports", "audio")
    assert both == ["google/gemini-2.5-flash"]
    assert listed(fake_server, "--free", "--supports", "tools") == [
        "meta-llama/llama-3.3-70b-instruct:free"
    ]
    assert listed(fake_server, "--free", "--supports", "image") == []


def test_sort_by_price_context_and_name(fake_server: Any) -> None:
    assert listed(fake_server, "--sort", "price") == [
        "meta-llama/llama-3.3-70b-instruct:free",
        "google/gemini-2.5-flash",
        "deepseek/deepseek-r1",
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4",
    ]
    assert listed(fake_server, "--sort", "context") == [
        "google/gemini-2.5-flash",
        "anthropic/claude-sonnet-4",
        "deepseek/deepseek-r1",
        "openai/gpt-4o",
        "meta-llama/llama-3.3-70b-instruct:free",
    ]
    assert listed(fake_server, "--sort", "name") == sorted(listed(fake_server))


def test_models_without_prices_sort_last() -> None:
    from rill.config.models import sort_models

    models = [{"id": "a/unknown"}, {"id": "b/cheap", "pricing": {"prompt": "0", "completion": "0"}}]
    assert [m["id"] for m in sort_models(models, "price")] == ["b/cheap", "a/unknown"]
    assert [m["id"] for m in sort_models(models, "context")] == ["a/unknown", "b/cheap"]


@pytest.mark.parametrize(
    ("args", "hint"), [(["--supports", "video"], "--supports"), (["--sort", "size"], "--sort")]
)
def test_bad_choices_are_usage_errors(fake_server: Any, args: list[str], hint: str) -> None:
    result = rill("models", "--base-url", fake_server.url, *args)
    assert result.exit_code == 2
    assert hint in result.stderr


def test_prices_read_like_openrouters_site() -> None:
    from rill.config.models import ModelRow, format_prices

    def row(prompt: str | None, completion: str | None) -> ModelRow:
        def dec(v: str | None) -> Decimal | None:
            return None if v is None else Decimal(v)

        return ModelRow("x", None, dec(prompt), dec(completion))

    assert format_prices(row("3", "15")) == "$3/M input · $15/M output"
    assert format_prices(row("0.3", "2.5")) == "$0.3/M input · $2.5/M output"
    assert format_prices(row("0.075", "0.30")) == "$0.075/M input · $0.3/M output"
    assert format_prices(row("1.25", "10")) == "$1.25/M input · $10/M output"
    assert format_prices(row("0", "0")) == "free"
    assert format_prices(row(None, None)) == "-"
    assert format_prices(row("2", None)) == "$2/M input"
