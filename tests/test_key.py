"""``rill key`` (OpenRouter's ``GET /key``) and ``rill usage --check``."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from rill.cli import app
from rill.commands.key import check_line, key_lines, money, usage_check
from tests.e2e import run

OPENROUTER = "https://openrouter.ai/api/v1"
KEY_DATA = {
    "label": "sk-or-v1-abc...xyz",
    "limit": 25,
    "limit_remaining": 17.5,
    "limit_reset": "monthly",
    "usage": 7.5,
    "usage_daily": 0.0042,
    "usage_weekly": 1.25,
    "usage_monthly": 7.5,
    "is_free_tier": False,
    "rate_limit": {"requests": 200, "interval": "10s"},
}


def rill(*args: str, transport: httpx.BaseTransport | None = None) -> Result:
    obj = {"transport": transport} if transport is not None else None
    return CliRunner().invoke(app, list(args), obj=obj)


def answering(
    status: int, body: Any, seen: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def test_key_for_a_person_shows_money_and_limits() -> None:
    seen: list[httpx.Request] = []
    result = rill("key", transport=answering(200, {"data": KEY_DATA}, seen))
    assert result.exit_code == 0, result.output
    assert str(seen[0].url) == f"{OPENROUTER}/key"
    assert seen[0].headers["authorization"].startswith("Bearer ")
    lines = result.stdout.splitlines()
    assert lines == [
        "label       sk-or-v1-abc...xyz",
        "limit       $25.00 (resets monthly)",
        "remaining   $17.50",
        "usage       today $0.0042 · this week $1.25 · this month $7.50 · all time $7.50",
        "rate limit  200 requests / 10s",
        "free tier   no",
    ]


def test_no_limit_is_said_in_words() -> None:
    data = {**KEY_DATA, "limit": None, "limit_remaining": None, "is_free_tier": True}
    assert ("limit", "no limit") in key_lines(data)
    assert ("remaining", "no limit") in key_lines(data)
    assert ("free tier", "yes") in key_lines(data)


def test_key_json_is_the_data_object_as_received() -> None:
    result = rill("key", "--json", transport=answering(200, {"data": KEY_DATA}))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == KEY_DATA


def test_an_old_server_without_key_falls_back_to_auth_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/auth/key"):
            return httpx.Response(200, json={"data": KEY_DATA})
        return httpx.Response(404, json={"error": {"code": 404, "message": "Not Found"}})

    result = rill("key", "--json", transport=httpx.MockTransport(handler))
    assert result.exit_code == 0, result.output
    assert [r.url.path for r in seen] == ["/api/v1/key", "/api/v1/auth/key"]


def test_without_a_key_exit_3_and_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    seen: list[httpx.Request] = []
    result = rill("key", transport=answering(200, {"data": KEY_DATA}, seen))
    assert result.exit_code == 3
    assert result.stderr.startswith("rill: no API key")
    assert seen == []


@pytest.mark.parametrize(
    ("status", "code"), [(401, 4), (403, 4), (402, 5), (429, 6), (500, 7), (503, 7)]
)
def test_http_errors_are_one_line_with_the_usual_exit_code(status: int, code: int) -> None:
    body = {"error": {"code": status, "message": "User not found."}}
    result = rill("key", transport=answering(status, body))
    assert result.exit_code == code
    assert result.stderr == f"rill: User not found. (HTTP {status})\n"
    assert result.stdout == ""


def test_a_network_failure_exits_8() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    result = rill("key", transport=httpx.MockTransport(handler))
    assert result.exit_code == 8
    assert result.stderr.startswith("rill: cannot connect to openrouter.ai")


@pytest.mark.parametrize("body", [[1, 2], {"nodata": 1}, "text"])
def test_an_answer_without_data_exits_7(body: Any) -> None:
    result = rill("key", transport=answering(200, body))
    assert result.exit_code == 7
    assert result.stderr.startswith("rill: the /key answer")


def test_the_key_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-or-v1-" + "s3cr3t" * 6
    monkeypatch.setenv("OPENROUTER_API_KEY", secret)
    body = {"error": {"code": 401, "message": f"bad key {secret}"}}
    result = rill("key", transport=answering(401, body))
    assert result.exit_code == 4
    assert secret not in result.stderr + result.stdout


def test_money_for_a_person() -> None:
    assert [money(v) for v in (0, 12.5, 1234.5, 0.0042, 0.000001, None)] == [
        "$0.00",
        "$12.50",
        "$1,234.50",
        "$0.0042",
        "$0.000001",
        "-",
    ]


# --- rill usage --check ------------------------------------------------------------------------


class FakeStore:
    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.since: Any = None

    def usage(self, since: Any = None, by: str = "model") -> list[dict[str, Any]]:
        self.since = since
        return [{"key": "2026-12-05", "requests": 1, "cost": self.cost}]


def test_usage_check_compares_today_with_the_key() -> None:
    store = FakeStore(0.0030)
    now = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
    check = usage_check(store, transport=answering(200, {"data": KEY_DATA}), now=now)
    assert store.since == datetime(2026, 12, 5, tzinfo=UTC)
    assert check["day"] == "2026-12-05"
    assert check["recorded_cost"] == pytest.approx(0.003)
    assert check["key_cost"] == pytest.approx(0.0042)
    assert check_line(check) == (
        "today (2026-12-05, UTC): rill recorded $0.003, the key reports $0.0042"
        " ($0.0012 spent elsewhere: other tools, or runs without history)"
    )
    same = {**check, "key_cost": 0.003, "difference": 0.0}
    assert check_line(same).endswith("(they agree)")


def test_usage_check_without_a_key_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    result = rill("usage", "--check")
    assert result.exit_code == 3
    assert result.stderr.startswith("rill: no API key")
    assert result.stdout == ""  # the check runs before anything is printed


def test_installed_rill_key_against_the_fake_server(fake_server: Any) -> None:
    fake_server.spent = 1.5
    done = run(["key", "--base-url", fake_server.url])
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "limit       $10.00\n" in out
    assert "remaining   $8.50\n" in out
    assert "today $1.50 · " in out
    as_json = run(["key", "--json", "--base-url", fake_server.url])
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["usage_daily"] == 1.5


def test_installed_usage_check_against_the_fake_server(fake_server: Any) -> None:
    env = {**os.environ, "RILL_BASE_URL": fake_server.url}
    assert run(["-m", "openai/gpt-4o", "hello"], env=env).returncode == 0
    assert fake_server.spent > 0
    done = run(["usage", "--check"], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().startswith("rill: today (")
    assert done.stderr.decode().endswith("(they agree)\n")
    assert done.stdout.decode().splitlines()[-1].startswith("TOTAL\t")
    fake_server.spent += 0.5
    done = run(["usage", "--check", "--json"], env=env)
    check = json.loads(done.stdout)["check"]
    assert check["difference"] == pytest.approx(0.5)
    assert check["recorded_cost"] > 0


def test_cache_saving_uses_each_models_cache_read_price() -> None:
    from rill.commands.key import cache_saving

    models = [
        {"id": "a/one", "pricing": {"prompt": "0.000003", "input_cache_read": "0.0000003"}},
        {"id": "b/two", "pricing": {"prompt": "0.000001"}},  # no cache price: not counted
    ]
    rows = [
        {"key": "a/one", "cached_tokens": 1_000_000},
        {"key": "b/two", "cached_tokens": 500},
        {"key": "c/three", "cached_tokens": 9},
    ]
    assert cache_saving(rows, models) == pytest.approx(2.7)
    assert cache_saving(rows[1:], models) is None
