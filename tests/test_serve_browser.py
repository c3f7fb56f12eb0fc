"""``rill serve``'s page in a real browser: Debian's headless Chromium driven by Playwright.

The page streams an answer (a typing indicator until the first token, text before the stream
ends, a live token count), stops it through the API, shows the usage when done, and never
turns model text into live HTML. Screenshots are saved in the test's tmp folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rill.fake import FakeOpenRouter, Gate, Scenario
from tests.e2e import run
from tests.serving import Served, start_serve

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"no browser: {CHROMIUM} is absent (apt-get install chromium; .ci/run does)",
)

HOSTILE = [
    "# Title\n\n",
    "Some **bold** and `code`.\n\n",
    "<script>window.__xss = 1</script>\n\n",
    '<img src=x onerror="window.__xss = 2">\n\n',
    "[click me](javascript:window.__xss=3) and [a real link](https://example.org/x)\n\n",
    "```html\n<b onmouseover=alert(1)>hi</b>\n```\n",
]


@pytest.fixture
def page(fake_server: FakeOpenRouter, tmp_path: Path) -> Iterator[tuple[Any, Served]]:
    from playwright.sync_api import sync_playwright

    server = start_serve(fake_server)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(server.url + "/")
            yield tab, server
            assert errors == []  # no script error on the page
        finally:
            browser.close()
            server.stop()


def _send(tab: Any, text: str) -> None:
    tab.fill("#input", text)
    tab.press("#input", "Enter")


def test_streaming_with_stop(
    page: tuple[Any, Served], fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    tab, _server = page
    gate = Gate(timeout=20)
    # Piece 0 (reasoning, which the page does not show) flows at once; the answer's pieces
    # wait for the test.
    fake_server.enqueue(
        Scenario(
            reasoning=["thinking"],
            reasoning_signature=None,
            reasoning_details=False,
            content=["Hello ", "there, ", "and ", "more."],
            gate=gate,
        )
    )
    _send(tab, "greet me")
    assert gate.wait_for_server(1, 10)
    tab.wait_for_selector(".answer.typing", state="attached", timeout=10_000)  # no token yet
    gate.release(1, 2)
    tab.wait_for_function(
        "() => document.querySelector('.answer').textContent.includes('there,')", timeout=10_000
    )
    # Text is on the page while the upstream still holds the rest back.
    assert gate.wait_for_server(3, 10)
    assert tab.eval_on_selector(".answer", "e => e.classList.contains('typing')") is False
    tab.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('2 tokens')", timeout=10_000
    )
    assert "tokens/s" in tab.text_content("#status")
    tab.screenshot(path=str(tmp_path / "streaming.png"))
    tab.click("#stop")
    assert fake_server.wait_disconnect(5) is not None  # the upstream connection was closed
    tab.wait_for_function(
        "() => document.getElementById('send').disabled === false", timeout=10_000
    )
    assert "cancelled" in tab.text_content(".meta")
    assert tab.text_content(".answer").strip() == "Hello there,"
    shown = json.loads(run(["history", "show", "last", "--json"]).stdout)
    exchange = shown["exchanges"][-1]
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"] == "Hello there, "
    tab.screenshot(path=str(tmp_path / "stopped.png"))


def test_model_text_never_becomes_html(
    page: tuple[Any, Served], fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    tab, _server = page
    fake_server.enqueue(Scenario(content=HOSTILE))
    _send(tab, "be hostile")
    tab.wait_for_function(
        "() => document.querySelector('.meta') && "
        "document.querySelector('.meta').textContent.includes('completion tokens')",
        timeout=10_000,
    )
    tab.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
    assert tab.evaluate("window.__xss") is None
    answer = ".answer"
    assert (
        tab.eval_on_selector_all(f"{answer} script, {answer} img, {answer} b", "n => n.length") == 0
    )
    text = tab.text_content(answer)
    assert "<script>window.__xss = 1</script>" in text
    assert '<img src=x onerror="window.__xss = 2">' in text
    assert "<b onmouseover=alert(1)>hi</b>" in text
    hrefs = tab.eval_on_selector_all(f"{answer} a", "ns => ns.map(n => n.getAttribute('href'))")
    assert hrefs == ["https://example.org/x"]  # the javascript: link stayed text
    assert "[click me](javascript:window.__xss=3)" in text
    # Markdown was rendered: a heading, bold, inline code and a code block.
    assert tab.text_content(f"{answer} h1") == "Title"
    assert tab.text_content(f"{answer} strong") == "bold"
    assert tab.text_content(f"{answer} pre code") == "<b onmouseover=alert(1)>hi</b>"
    # The chat is in the list, and reopening it renders the same answer from history.
    tab.wait_for_selector("#chats li", timeout=10_000)
    tab.click("#chats li")
    tab.wait_for_function("() => document.querySelector('.answer h1') !== null", timeout=10_000)
    assert tab.evaluate("window.__xss") is None
    assert tab.eval_on_selector_all(f"{answer} img, {answer} script", "n => n.length") == 0


def test_an_error_is_shown_in_place(page: tuple[Any, Served], fake_server: FakeOpenRouter) -> None:
    tab, _server = page
    fake_server.enqueue(Scenario.error(402, message="Insufficient credits <b>now</b>"))
    _send(tab, "hi")
    tab.wait_for_selector(".error", timeout=10_000)
    assert "Insufficient credits <b>now</b>" in tab.text_content(".error")
    assert tab.eval_on_selector_all(".error b", "n => n.length") == 0
