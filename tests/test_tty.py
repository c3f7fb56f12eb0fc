"""The terminal layer: colour policy, safe output, block splitting, live markdown, spinner.

Terminals are faked with in-memory streams that claim ``isatty()``; the screen that the live
markdown renderer leaves behind is checked with a small VT model (``Screen``) that knows what
the renderer writes: text with line wrapping, CR, LF, BS, cursor up, erase below and SGR.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import threading
from typing import Any

import pytest
from rich.cells import get_character_cell_size

from rill.config.settings import Settings
from rill.events import Chunk, Done, Error, Reasoning, Start, ToolCall
from rill.output.formats import OutputFormat, TextRenderer, make_renderer
from rill.stream.transcript import Transcript
from rill.terminal.blocks import Block, BlockSplitter, CodeEnd, CodeLine, CodeStart, MdEvent
from rill.terminal.color import color_enabled
from rill.terminal.markdown import TerminalMarkdown
from rill.terminal.renderers import TerminalEvents, TerminalText, for_terminal
from rill.terminal.safe import SafeText, neutralise
from rill.terminal.spinner import Spinner
from tests.e2e import wait_until

OSC52 = "\x1b]52;c;aGVsbG8=\x07"
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"
TITLE = "\x1b]0;pwned\x07"
CSI = "\x1b[2J\x1b[H\x1b[1A"
DCS = "\x1bP1$r0m\x1b\\"
C1_CSI = "\x9b31m"
HOSTILE = f"a{OSC52}b{OSC8}c{TITLE}d{CSI}e{DCS}f{C1_CSI}g\bh\x00i\x7fj"

DOC = """# Title

Intro with **bold**, `code` and a [link](https://example.com).

## Steps
1. First
2. Second
   - nested
- loose item

  continued after a blank line
- next

```python
def main():
    '''Docstring.'''
    return 1
```

> quoted

| a | b |
|---|---|
| 1 | 2 |

***
Done.
"""


class FakeTTY(io.BytesIO):
    def isatty(self) -> bool:
        return True


class FakeTTYText(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakePipe(io.BytesIO):
    def isatty(self) -> bool:
        return False


def settings(**kw: Any) -> Settings:
    return Settings(base_url="http://127.0.0.1:1/v1", model="m", api_key=None, **kw)


def pieces(text: str, seed: int = 0, most: int = 6) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, most)
        out.append(text[i : i + n])
        i += n
    return out


DONE = Done({"role": "assistant", "content": ""}, None, "stop", "m", None, None, None)
CANCELLED = Done({"role": "assistant", "content": ""}, None, "cancelled", "m", None, None, None)


def text_renderer(
    out: Any,
    err: Any = None,
    *,
    stdout_tty: bool = True,
    stderr_tty: bool = True,
    raw: bool = False,
    env: dict[str, str] | None = None,
    **kw: Any,
) -> Any:
    """What ``rill -f text`` builds for ``out``: a TextRenderer wrapped by ``for_terminal``;
    ``kw`` are settings."""
    return for_terminal(
        TextRenderer(out, tty=stdout_tty),
        fmt=OutputFormat.text,
        settings=settings(**kw),
        stdout_tty=stdout_tty,
        stderr_tty=stderr_tty,
        raw=raw,
        out=out,
        err=err,
        env=env or {},
    )


def run_text(
    chunks: list[str],
    *,
    env: dict[str, str] | None = None,
    raw: bool = False,
    stdout_tty: bool = True,
    stderr_tty: bool = False,
    reasoning: list[str] = (),  # type: ignore[assignment]
    terminal: Done | Error = DONE,
    **kw: Any,
) -> tuple[bytes, str]:
    out = FakeTTY() if stdout_tty else FakePipe()
    err = FakeTTYText() if stderr_tty else io.StringIO()
    renderer = text_renderer(
        out,
        err,
        stdout_tty=stdout_tty,
        stderr_tty=stderr_tty,
        raw=raw,
        env={"COLUMNS": "80", "LINES": "40", "TERM": "xterm-256color", **(env or {})},
        **kw,
    )
    renderer.start(Start("c", "m"), Transcript())
    for r in reasoning:
        renderer.deltas(b"", [Reasoning(r)])
    for c in chunks:
        renderer.deltas(c.encode(), [Chunk(c)])
    renderer.finish(terminal)
    return out.getvalue(), err.getvalue()


# -- colour policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "env", "tty", "expected"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": ""}, True, True),  # empty means unset
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"FORCE_COLOR": ""}, False, False),
        ("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ("auto", {"TERM": "dumb"}, True, False),
        ("always", {"NO_COLOR": "1"}, False, True),
        ("always", {}, False, True),
        ("never", {"FORCE_COLOR": "1"}, True, False),
        ("never", {}, True, False),
    ],
)
def test_color_policy(setting: str, env: dict[str, str], tty: bool, expected: bool) -> None:
    stream = FakeTTY() if tty else FakePipe()
    assert color_enabled(stream, setting, env) is expected


def test_color_policy_survives_streams_without_isatty() -> None:
    assert color_enabled(object(), "auto", {}) is False


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_colour_means_no_escape_sequences_anywhere(env: dict[str, str]) -> None:
    out, err = run_text(pieces(DOC), env=env, stderr_tty=True, reasoning=["thinking ", "hard"])
    assert b"\x1b" not in out
    assert "\x1b" not in err
    text = out.decode()
    assert "Title" in text and "• next" in text and "def main():" in text
    assert "# Title" not in text and "```" not in text and "**" not in text
    assert "thinking hard" in err


def test_colour_always_styles_even_a_non_terminal_env() -> None:
    out, _ = run_text(pieces(DOC), color="always", env={"NO_COLOR": "1"})
    assert b"\x1b[" in out


# -- safe output ------------------------------------------------------------------------------


def test_neutralise_makes_controls_visible() -> None:
    shown = neutralise(HOSTILE)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown)
    assert "␛]52;c;aGVsbG8=␇" in shown
    assert "␛]8;;https://evil.example/␛\\click me" in shown
    assert "␛[2J␛[H␛[1A" in shown
    assert "␛P1$r0m" in shown
    assert "␛[31m" in shown  # the 8-bit CSI, spelled as its 7-bit form
    assert "g␈h␀i␡j" in shown


def test_neutralise_keeps_ordinary_text() -> None:
    text = "tabs\tand\nnewlines, ünïcödé, 漢字, emoji 🎉"
    assert neutralise(text) is text
    assert neutralise("crlf\r\nline") == "crlf\nline"
    assert neutralise("over\rwrite") == "over␍write"
    assert neutralise("bad \udc9b byte") == "bad \ufffd byte"


def test_safe_text_joins_crlf_split_across_deltas() -> None:
    safe = SafeText()
    assert safe.feed("one\r") == "one"
    assert safe.feed("\ntwo\r") == "\ntwo"
    assert safe.feed("three") == "␍three"
    assert safe.feed("four\r") == "four"
    assert safe.flush() == "␍"
    assert safe.flush() == ""


@pytest.mark.parametrize("markdown", [True, False])
@pytest.mark.parametrize("color", ["always", "never"])
def test_hostile_answer_never_reaches_the_terminal_raw(markdown: bool, color: str) -> None:
    out, _ = run_text(
        pieces("# Hi\n\n" + HOSTILE + "\n\n- " + OSC52 + "\n"), markdown=markdown, color=color
    )
    for seq in (b"\x1b]", b"\x07", b"\x1b[2J", b"\x1b[H", b"\x1bP", b"\xc2\x9b", b"\x08", b"\x00"):
        assert seq not in out
    assert "␛]52;c;aGVsbG8=␇".encode() in out


def test_raw_writes_the_answer_unchanged() -> None:
    out, _ = run_text([HOSTILE[:7], HOSTILE[7:]], raw=True)
    assert out == (HOSTILE + "\n").encode()


def test_a_pipe_on_stdout_gets_exact_bytes_even_with_stderr_on_a_terminal() -> None:
    out, err = run_text(pieces(HOSTILE + "# x"), stdout_tty=False, stderr_tty=True)
    assert out == (HOSTILE + "# x").encode()
    assert "␛" not in err  # no reasoning, and the spinner is gone


def test_plain_text_on_a_terminal_gets_a_final_newline_and_nothing_else() -> None:
    out, _ = run_text(["plain ", "**text**"], markdown=False)
    assert out == b"plain **text**\n"
    out, _ = run_text(["ends\r"], markdown=False)
    assert out == "ends␍\n".encode()


# -- reasoning --------------------------------------------------------------------------------


def test_reasoning_is_dimmed_on_stderr_and_never_on_stdout() -> None:
    out, err = run_text(["Answer."], stderr_tty=True, reasoning=["Let me ", "think" + TITLE])
    assert b"think" not in out
    assert err.startswith("\x1b[2mLet me \x1b[0m\x1b[2mthink␛]0;pwned␇\x1b[0m")
    assert err.endswith("\n\n")  # the answer starts after a blank line
    assert "\x07" not in err


def test_reasoning_can_be_hidden_or_forced() -> None:
    _, err = run_text(["A"], stderr_tty=True, show_reasoning=False, reasoning=["secret"])
    assert "secret" not in err
    _, err = run_text(["A"], stderr_tty=False, show_reasoning=True, reasoning=["shown" + TITLE])
    assert err == "shown" + TITLE + "\n\n"  # stderr is a file: exact text, no styles


def test_reasoning_without_an_answer_still_ends_its_line() -> None:
    err_stream = FakeTTYText()
    renderer = text_renderer(FakeTTY(), err_stream, color="never")
    renderer.deltas(b"", [Reasoning("hmm")])
    renderer.finish(Error(500, "boom", 500, 7, {}))
    assert err_stream.getvalue().endswith("hmm\n")


# -- block splitting --------------------------------------------------------------------------


def split_all(chunks: list[str]) -> list[MdEvent]:
    splitter = BlockSplitter()
    events: list[MdEvent] = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    return events + splitter.close()


def test_blocks_of_a_document() -> None:
    assert split_all([DOC]) == [
        Block("heading", "# Title", False),
        Block("para", "Intro with **bold**, `code` and a [link](https://example.com).", True),
        Block("heading", "## Steps", True),
        Block("list", "1. First", False),
        Block("list", "2. Second\n   - nested", False),
        Block("list", "- loose item\n\n  continued after a blank line", False),
        Block("list", "- next", False),
        CodeStart("python", True),
        CodeLine("def main():"),
        CodeLine("    '''Docstring.'''"),
        CodeLine("    return 1"),
        CodeEnd(),
        Block("para", "> quoted", True),
        Block("para", "| a | b |\n|---|---|\n| 1 | 2 |", True),
        Block("rule", "***", True),
        Block("para", "Done.", False),
    ]


@pytest.mark.parametrize("seed", range(8))
def test_any_split_gives_the_same_blocks(seed: int) -> None:
    assert split_all(pieces(DOC, seed, most=1 + seed)) == split_all([DOC])


def test_fence_split_across_deltas() -> None:
    events = split_all(["intro\n`", "`", "`py", "thon\nx = 1\n\n``", "`\nafter"])
    assert events == [
        Block("para", "intro", False),
        CodeStart("python", False),
        CodeLine("x = 1"),
        CodeLine(""),
        CodeEnd(),
        Block("para", "after", False),
    ]


def test_fence_rules() -> None:
    # a longer or different fence does not close; tildes work; info after the name is ignored
    events = split_all(["~~~~ js {x}\n~~~\n```\n~~~~~\nnext"])
    assert events == [
        CodeStart("js", False),
        CodeLine("~~~"),
        CodeLine("```"),
        CodeEnd(),
        Block("para", "next", False),
    ]
    # backticks in a backtick info string: not a fence
    assert split_all(["``` a ` b\n"]) == [Block("para", "``` a ` b", False)]
    # an indented fence loses that indent from its lines; an unclosed fence ends with the text
    assert split_all(["  ```\n    x\n  y"]) == [
        CodeStart("", False),
        CodeLine("  x"),
        CodeLine("y"),
        CodeEnd(),
    ]


def test_markdown_inside_a_fence_is_code() -> None:
    events = split_all(["```md\n# not a heading\n- not a list\n\n```\n"])
    assert [type(e) for e in events] == [CodeStart, CodeLine, CodeLine, CodeLine, CodeEnd]


def test_list_items_and_their_continuations() -> None:
    text = "- a\nlazy\n- b\n\n    ```\n    - in code\n\n    ```\n- c\n\npara"
    assert split_all([text]) == [
        Block("list", "- a\nlazy", False),
        Block("list", "- b\n\n    ```\n    - in code\n\n    ```", False),
        Block("list", "- c", False),
        Block("para", "para", True),
    ]


def test_headings_rules_and_setext() -> None:
    text = "Title\n===\ntext\n---\n# H\nafter\n---\n\n* * *\n"
    assert split_all([text]) == [
        Block("para", "Title\n===", False),
        Block("para", "text\n---", False),
        Block("heading", "# H", False),
        Block("para", "after\n---", False),
        Block("rule", "* * *", True),
    ]


def test_work_per_delta_does_not_depend_on_what_came_before() -> None:
    splitter = BlockSplitter()
    for _ in range(2000):
        splitter.feed("word ")
    assert splitter.live_text().count("word") == 2000
    splitter.feed("\n\n")
    assert splitter.live_text() == ""  # the finished paragraph is no longer held


# -- the live renderer, on a model screen ------------------------------------------------------


class Screen:
    """Just enough of a VT100 for what TerminalMarkdown writes (LF also returns the carriage,
    as a tty's ONLCR does)."""

    TOKEN = re.compile(r"\x1b\[([\d;]*)([A-Za-z])|[\r\n\b]|[^\x1b\r\n\b]+")

    def __init__(self, width: int) -> None:
        self.width = width
        self.rows: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: str) -> Screen:
        for m in self.TOKEN.finditer(data):
            token = m.group()
            if m.group(2):
                self._csi(int(m.group(1).split(";")[0] or 1), m.group(2))
            elif token == "\n":
                self._down()
                self.col = 0
            elif token == "\r":
                self.col = 0
            elif token == "\b":
                self.col = max(self.col - 1, 0)
            else:
                for ch in token:
                    self._put(ch)
        return self

    def _csi(self, n: int, op: str) -> None:
        if op == "A":
            self.row = max(self.row - n, 0)
            self.col = min(self.col, self.width - 1)
        elif op == "J":
            del self.rows[self.row + 1 :]
            del self.rows[self.row][self.col :]
        # "m" (styles) changes nothing on this screen

    def _down(self) -> None:
        self.row += 1
        while len(self.rows) <= self.row:
            self.rows.append([])

    def _put(self, ch: str) -> None:
        cells = get_character_cell_size(ch)
        if not cells:
            return
        if self.col + cells > self.width:
            self._down()
            self.col = 0
        line = self.rows[self.row]
        while len(line) < self.col + cells:
            line.append(" ")
        line[self.col : self.col + cells] = [ch] + [""] * (cells - 1)
        self.col += cells

    def text(self) -> str:
        return "\n".join("".join(r).rstrip() for r in self.rows).rstrip("\n")


def render(chunks: list[str], *, color: bool, width: int = 60, height: int = 40) -> str:
    md = TerminalMarkdown(color=color, width=width, height=height, env={"TERM": "xterm"})
    return "".join([md.feed(c) for c in chunks]) + md.close()


@pytest.mark.parametrize("seed", range(6))
def test_streaming_leaves_the_same_screen_as_one_piece(seed: int) -> None:
    whole = Screen(60).feed(render([DOC], color=True)).text()
    streamed = Screen(60).feed(render(pieces(DOC, seed, most=1 + 2 * seed), color=True)).text()
    assert streamed == whole
    assert "# Title" not in whole and "```" not in whole and "**" not in whole
    assert "• next" in whole and "def main():" in whole


def test_wrapped_and_wide_text_is_erased_exactly() -> None:
    doc = (
        "# Head\n\n"
        + ("漢字かな " * 30 + "\n\n")
        + ("word\tafter tab " * 20 + "\n\n")
        + "- é" * 40
        + "\n"
    )
    for seed in range(4):
        streamed = Screen(23).feed(render(pieces(doc, seed), color=True, width=23)).text()
        assert streamed == Screen(23).feed(render([doc], color=True, width=23)).text()


def test_rendered_blocks_replace_their_raw_preview() -> None:
    md = TerminalMarkdown(color=True, width=40, height=20, env={})
    screen = Screen(40)
    screen.feed(md.feed("Some **bo"))
    assert screen.text() == "Some **bo"  # the open block, raw
    screen.feed(md.feed("ld** text\n\nNext"))
    assert screen.text() == "Some bold text\n\nNext"
    screen.feed(md.close())
    assert screen.text() == "Some bold text\n\nNext"


def test_a_block_taller_than_the_screen_stays_raw_instead_of_being_duplicated() -> None:
    para = "\n".join(f"line {i} **x**" for i in range(12)) + "\n\nafter\n"
    out = render(pieces(para), color=True, width=40, height=8)
    shown = Screen(40).feed(out).text()
    assert shown.count("line 11") == 1
    assert "line 0 **x**" in shown  # left as it streamed
    assert shown.endswith("after")


def test_cancel_keeps_the_live_text_as_it_is() -> None:
    md = TerminalMarkdown(color=True, width=40, height=20, env={})
    out = md.feed("# Head\n\nhalf a **sen") + md.close(keep_raw=True)
    assert Screen(40).feed(out).text().endswith("half a **sen")
    assert out.endswith("\n")


def test_code_is_highlighted_line_by_line_with_context() -> None:
    md = TerminalMarkdown(color=True, width=40, height=20, env={"TERM": "xterm-256color"})
    first = md.feed('```python\ns = """\n')
    second = md.feed("def not_code():\n")
    assert "def" not in first
    # inside the string, "def" gets the string colour, not the keyword colour
    keyword = md.feed('"""\ndef f(): pass\n')
    string_style = re.findall(r"\x1b\[([0-9;]*)mdef not_code", second)
    keyword_style = re.findall(r"\x1b\[([0-9;]*)mdef\x1b", keyword)
    assert string_style and keyword_style and string_style != keyword_style


def test_without_colour_blocks_wait_until_finished() -> None:
    md = TerminalMarkdown(color=False, width=40, height=20, env={})
    assert md.feed("Para **one**") == ""
    assert md.pending
    out = md.feed("\n\n```\n")
    assert out == "Para one\n\n"
    assert not md.pending
    assert md.feed("code line\n") == " code line\n"
    assert md.feed("```\n- item\n") == ""
    assert md.close() == "\n • item\n"


# -- spinner ----------------------------------------------------------------------------------


FRAME = re.compile(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (?:thinking )?\d+\.\ds")


def test_spinner_draws_and_erases_without_escape_sequences() -> None:
    err = FakeTTYText()
    spinner = Spinner(err, color=False, interval=0.01, delay=0).start()
    try:
        wait_until(lambda: len(FRAME.findall(err.getvalue())) >= 3)
        with spinner.writing():
            err.write("note\n")
        spinner.at_line_start = True
    finally:
        spinner.stop()
    log = err.getvalue()
    assert "\x1b" not in log
    before, after = log.split("note\n", 1)
    assert before.endswith("\r" + " " * len(FRAME.findall(before)[-1]) + "\r")
    assert Screen(80).feed(log).text().splitlines()[0] == "note"
    assert Screen(80).feed(log).text().strip() == "note"  # nothing left after stop


class TickCountingLock:
    """Stands in for ``Spinner.lock``: the spinner's thread takes the lock once per tick, so the
    number of times it was released counts the ticks the thread has finished (a test that does
    not use the lock itself sees only those)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition()
        self.released = 0

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        with self._cond:
            self.released += 1
            self._cond.notify_all()

    def wait_ticks(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` more ticks have finished."""
        with self._cond:
            target = self.released + count
            assert self._cond.wait_for(lambda: self.released >= target, timeout), "no ticks"


def test_spinner_waits_for_a_fresh_line_and_for_enabled() -> None:
    err = FakeTTYText()
    spinner = Spinner(err, color=True, interval=0.005, delay=0)
    ticks = TickCountingLock()
    spinner.lock = ticks  # type: ignore[assignment]
    spinner.at_line_start = False
    spinner.start()
    ticks.wait_ticks(3)  # the thread has looked three times: not at the start of a line
    assert err.getvalue() == ""
    spinner.enabled = False
    spinner.at_line_start = True
    ticks.wait_ticks(3)  # and three more (at least two after the change): not enabled
    assert err.getvalue() == ""
    spinner.enabled = True
    wait_until(lambda: "\x1b[2m" in err.getvalue())  # dimmed when colour is on
    spinner.stop()


def test_for_terminal_spins_until_the_first_token() -> None:
    out, err = FakeTTY(), FakeTTYText()
    renderer = text_renderer(out, err, color="never", show_reasoning=False, markdown=False)
    assert isinstance(renderer, TerminalText) and renderer.spinner is not None
    renderer.spinner.interval = 0.01
    wait_until(lambda: bool(FRAME.search(err.getvalue())))
    renderer.deltas(b"", [Reasoning("hidden")])
    wait_until(lambda: "thinking" in err.getvalue())
    spinner = renderer.spinner
    renderer.deltas(b"", [Chunk("Hello")])
    assert renderer.spinner is None  # stopped: the answer is on the screen
    settled = err.getvalue()
    # Its thread has ended (``stop`` joins it), so nothing can be drawn after the answer.
    assert spinner._thread is not None
    wait_until(lambda: not spinner._thread.is_alive())
    assert err.getvalue() == settled
    renderer.finish(DONE)
    assert Screen(80).feed(err.getvalue()).text() == ""
    assert "hidden" not in err.getvalue()
    assert out.getvalue() == b"Hello\n"


def test_spinner_comes_back_while_a_colourless_block_is_incomplete() -> None:
    out, err = FakeTTY(), FakeTTYText()
    renderer = text_renderer(out, err, color="never")
    assert isinstance(renderer, TerminalText) and renderer.spinner is not None
    renderer.spinner.interval = 0.01
    renderer.start(Start("c", "m"), Transcript())
    renderer.deltas(b"", [Chunk("Para one\n\nPara t")])
    assert out.getvalue() == b"Para one\n"
    mark = len(err.getvalue())
    wait_until(lambda: bool(FRAME.search(err.getvalue()[mark:])))
    renderer.deltas(b"", [Chunk("wo\n\n")])
    assert renderer.spinner is None
    renderer.finish(DONE)
    assert out.getvalue() == b"Para one\n\nPara two\n"


def test_other_stderr_notes_erase_the_spinner(monkeypatch: pytest.MonkeyPatch) -> None:
    real = FakeTTYText()
    monkeypatch.setattr(sys, "stderr", real)
    renderer = text_renderer(FakePipe(), stdout_tty=False, color="never")
    assert sys.stderr is not real
    assert isinstance(renderer, TerminalText) and renderer.spinner is not None
    renderer.spinner.interval = 0.01
    wait_until(lambda: bool(FRAME.search(real.getvalue())))
    sys.stderr.write("rill: retrying in 1 s (HTTP 429)\n")
    assert sys.stderr.isatty()  # everything else is passed through
    mark = len(real.getvalue())
    wait_until(lambda: bool(FRAME.search(real.getvalue()[mark:])))  # back, on the next line
    renderer.finish(DONE)
    assert sys.stderr is real
    assert Screen(80).feed(real.getvalue()).text() == "rill: retrying in 1 s (HTTP 429)"


# -- machine formats --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [f for f in OutputFormat if f is not OutputFormat.text])
def test_machine_formats_keep_their_bytes(fmt: OutputFormat) -> None:
    def drive(renderer: Any) -> None:
        renderer.start(Start("c", "m"), Transcript())
        renderer.deltas(
            b"data: raw\n\n", [Reasoning("r"), Chunk(OSC52), ToolCall(0, "i", "f", "{")]
        )
        renderer.finish(DONE)

    plain, wrapped_out, err = FakePipe(), FakeTTY(), FakeTTYText()
    drive(make_renderer(fmt, plain))
    wrapped = for_terminal(
        make_renderer(fmt, wrapped_out),
        fmt=fmt,
        settings=settings(),
        stdout_tty=True,
        stderr_tty=True,
        raw=False,
        out=wrapped_out,
        err=err,
        env={},
    )
    assert isinstance(wrapped, TerminalEvents)
    drive(wrapped)
    assert wrapped_out.getvalue() == plain.getvalue()
    assert Screen(80).feed(err.getvalue()).text() == ""


def test_cancelled_run_keeps_the_partial_line() -> None:
    out, _ = run_text(["# H\n\npartial **an"], color="always", terminal=CANCELLED)
    assert out.endswith(b"partial **an\n")


# -- import cost --------------------------------------------------------------------------------


def test_rich_is_imported_only_for_markdown() -> None:
    code = (
        "import sys, io\n"
        "from rill.terminal.renderers import for_terminal\n"
        "from rill.output.formats import OutputFormat, TextRenderer\n"
        "from rill.config.settings import Settings\n"
        "class T(io.BytesIO):\n"
        "    def isatty(self): return True\n"
        "out = T()\n"
        "s = Settings(base_url='http://x', model=None, api_key=None, markdown={md})\n"
        "r = for_terminal(TextRenderer(out, tty=True), fmt=OutputFormat.text, settings=s,\n"
        "                 stdout_tty=True, stderr_tty=False, raw=False, out=out, env={{}})\n"
        "from rill.events import Chunk, Start\n"
        "from rill.stream.transcript import Transcript\n"
        "r.start(Start('c', 'm'), Transcript()); r.deltas(b'', [Chunk('hi')])\n"
        "print(sorted(m for m in ('rich', 'rich.markdown', 'pygments') if m in sys.modules))\n"
    )
    for markdown, loaded in ((False, "[]"), (True, "['pygments', 'rich', 'rich.markdown']")):
        done = subprocess.run(
            [sys.executable, "-c", code.format(md=markdown)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert done.stdout.strip() == loaded, f"markdown={markdown}"
