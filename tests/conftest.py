"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import reap_spawned

#: A proxy on loopback that nothing listens on (port 9, "discard"): connecting fails at once.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)

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
    # Any other host goes through a loopback proxy that nobody listens on: a request that
    # escapes the fake server fails at once, on this machine, instead of reaching the internet.
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, DEAD_PROXY)
    return home


@pytest.fixture(autouse=True)
def _no_spawned_process_left() -> Iterator[None]:
    """Kill every ``rill`` that ``tests.e2e.spawn`` started and that still runs when the test
    ends (a failed assertion skips the test's own clean-up), and close its pipes, so no process
    or open file outlives the test that made it."""
    yield
    reap_spawned()
