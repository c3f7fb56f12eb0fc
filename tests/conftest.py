"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakeserver import FakeOpenRouter

# --- fake OpenRouter server and an isolated environment ---------------------------------------


@pytest.fixture(scope="session")
def fake_server_session() -> Iterator[FakeOpenRouter]:
    """One fake OpenRouter server for the whole run (use ``fake_server`` in tests)."""
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def fake_server(fake_server_session: FakeOpenRouter) -> Iterator[FakeOpenRouter]:
    """The session's fake server with an empty queue, no records and default settings."""
    fake_server_session.reset()
    yield fake_server_session
    fake_server_session.reset()


@pytest.fixture
def fake_base_url(fake_server: FakeOpenRouter) -> str:
    """Base URL of the fake server, e.g. ``http://127.0.0.1:PORT/api/v1``."""
    return fake_server.url


@pytest.fixture(autouse=True)
def rill_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_server_session: FakeOpenRouter
) -> Path:
    """Keep every test away from the user's files, settings and proxies; returns RILL_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("RILL_HOME", str(home))
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_server_session.api_key)
    for name in ("RILL_MODEL", "RILL_BASE_URL", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    # A proxy from the environment must not intercept requests to the local fake server.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home
