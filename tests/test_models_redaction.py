"""``rill models`` never shows or caches the API key, however the key was configured.

The end-to-end tests run the installed ``rill`` against the fake server's ``hostile-key-*``
scenarios, which echo the request's key in the model list (``hostile-key-models``) or in an
error (``code``, ``metadata``, ``message`` at character 490 of 600, ``malformed``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from rill.cli import app
from rill.fake import FakeOpenRouter
from tests.e2e import run

#: As long as a real key, with a tail that appears nowhere else.
KEY = "sk-or-v1-" + "7e1a9c04b3f5d286" * 4
#: What may show of the key: the first six characters, then "…REDACTED".
SHOWN = KEY[:6]
OPENROUTER = "https://openrouter.ai/api/v1"


def configure(home: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """Give rill ``KEY`` through ``source``: the environment, ``api_key`` or ``api_key_cmd``."""
    monkeypatch.delenv("OPENROUTER_API_KEY")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.toml"
    if source == "env":
        monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    elif source == "api_key":
        config.write_text(f'api_key = "{KEY}"\n', encoding="utf-8")
        config.chmod(0o600)
    else:
        config.write_text(f"api_key_cmd = \"printf '%s' {KEY}\"\n", encoding="utf-8")


def assert_no_key(text: str) -> None:
    """Not the key, nor any piece of it longer than what a redaction shows."""
    assert KEY[: len(SHOWN) + 1] not in text
    assert KEY[-8:] not in text


def models(fake: FakeOpenRouter, *args: str) -> tuple[int, str, str]:
    done = run(["models", "--base-url", fake.url, *args], env=os.environ)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize("source", ["api_key_cmd", "api_key", "env"])
def test_a_model_list_echoing_the_key_is_redacted_in_output_and_cache(
    fake_server: FakeOpenRouter, rill_env: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    configure(rill_env, monkeypatch, source)
    fake_server.default_scenario = "hostile-key-models"
    code, table, err = models(fake_server)
    assert code == 0 and err == ""
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # the key was sent
    assert_no_key(table)
    assert f"fake/echo-{SHOWN}…REDACTED\t4096\t1\t2" in table.splitlines()
    code, listed, err = models(fake_server, "--json")  # from the cache this time
    assert code == 0 and err == "" and len(fake_server.requests) == 1
    assert_no_key(listed)
    echo = next(m for m in json.loads(listed) if m["id"].startswith("fake/echo-"))
    assert echo["name"] == f"Echo: {SHOWN}…REDACTED"
    assert echo["description"][490:].startswith(f"{SHOWN}…REDACTED was rejected.")
    assert echo["metadata"] == {f"{SHOWN}…REDACTED": f"{SHOWN}…REDACTED"}
    cache = (rill_env / "cache" / "models.json").read_text(encoding="utf-8")
    assert_no_key(cache)
    assert "REDACTED" in cache


@pytest.mark.parametrize(
    ("place", "source"),
    [
        ("code", "api_key_cmd"),
        ("metadata", "api_key_cmd"),
        ("message", "api_key_cmd"),
        ("malformed", "api_key_cmd"),
        ("message", "env"),
        ("malformed", "api_key"),
    ],
)
def test_an_error_echoing_the_key_is_redacted_before_it_is_cut(
    fake_server: FakeOpenRouter,
    rill_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    place: str,
    source: str,
) -> None:
    configure(rill_env, monkeypatch, source)
    fake_server.default_scenario = f"hostile-key-{place}"
    code, out, err = models(fake_server, "--refresh")
    assert fake_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert code == 7 and out == ""
    assert err.startswith("rill: ") and err.count("\n") == 1 and "(HTTP 400)" in err
    assert_no_key(err)
    if place in ("message", "malformed"):  # the two that show where the key was
        assert f"{SHOWN}…" in err
    assert not (rill_env / "cache" / "models.json").exists()


def rill(*args: str, transport: httpx.BaseTransport) -> Result:
    return CliRunner().invoke(app, list(args), obj={"transport": transport})


def test_a_key_spelt_with_json_escapes_is_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    escaped = "".join(f"\\u{ord(c):04x}" for c in KEY)

    def listing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f'{{"data": [{{"id": "m/{escaped}"}}]}}')

    result = rill(
        "models", "--base-url", OPENROUTER, "--json", transport=httpx.MockTransport(listing)
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"id": f"m/{SHOWN}…REDACTED"}]

    def error(request: httpx.Request) -> httpx.Response:
        message = "x" * 495 + escaped  # past the 500 characters an error message is cut to
        return httpx.Response(401, text=f'{{"error": {{"code": 401, "message": "{message}"}}}}')

    result = rill(
        "models", "--base-url", OPENROUTER, "--refresh", transport=httpx.MockTransport(error)
    )
    assert result.exit_code == 4
    assert_no_key(result.stderr)


def test_a_cache_written_with_the_key_in_it_is_shown_without(
    rill_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(rill_env, monkeypatch, "api_key_cmd")
    cache = rill_env / "cache" / "models.json"
    cache.parent.mkdir(parents=True)
    entry = {"id": f"old/{KEY}", "name": KEY, "extra": [{KEY: [KEY]}]}
    record = {"fetched_at": int(time.time()), "base_url": OPENROUTER, "data": [entry]}
    cache.write_text(json.dumps(record), encoding="utf-8")

    def offline(request: httpx.Request) -> httpx.Response:
        raise AssertionError("a fresh cache is not fetched again")

    result = rill(
        "models", "--base-url", OPENROUTER, "--json", transport=httpx.MockTransport(offline)
    )
    assert result.exit_code == 0
    assert_no_key(result.stdout)
    redacted = f"{SHOWN}…REDACTED"
    assert json.loads(result.stdout) == [
        {"id": f"old/{redacted}", "name": redacted, "extra": [{redacted: [redacted]}]}
    ]
