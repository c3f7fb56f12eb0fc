"""``-x/--extract`` and ``--extract-last``: the fence rules, the same output however the answer is
cut into deltas, and the command end to end (the first block streams, history keeps it all)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rill.fake import FakeOpenRouter, Gate, Scenario
from rill.fake.structured import CODE_ANSWER, CODE_FIRST, CODE_LAST
from rill.output.extract import FenceExtractor, extract
from tests.e2e import finish, read_until, run, spawn

# (answer, first block, last block)
CASES = [
    ("no code at all\n", "no code at all\n", "no code at all\n"),
    ("", "", ""),
    ("a\n```\nx = 1\n```\nb\n", "x = 1\n", "x = 1\n"),
    ("```python\nprint(1)\n```", "print(1)\n", "print(1)\n"),
    ("```py\none\n```\n```sh\ntwo\n```\n", "one\n", "two\n"),
    ("~~~\ntilde\n~~~\n", "tilde\n", "tilde\n"),
    # a shorter fence, or the other character, inside a block is content
    ("````md\n```\ninner\n```\n````\n", "```\ninner\n```\n", "```\ninner\n```\n"),
    ("~~~\n```\nx\n```\n~~~\n", "```\nx\n```\n", "```\nx\n```\n"),
    ("```\n~~~\n```\n", "~~~\n", "~~~\n"),
    # closing: at least as long, only spaces after it, at most 3 spaces before it
    ("```\na\n`````  \nafter\n", "a\n", "a\n"),
    ("```\na\n``` x\nb\n```\n", "a\n``` x\nb\n", "a\n``` x\nb\n"),
    ("```\na\n    ```\nb\n```\n", "a\n    ```\nb\n", "a\n    ```\nb\n"),
    ("```\na\n   ```\nb\n", "a\n", "a\n"),
    # an unclosed block runs to the end
    ("text\n```js\nlet a;\nlet b;", "let a;\nlet b;", "let a;\nlet b;"),
    ("```\n", "", ""),
    ("```", "", ""),
    # indentation of the opening fence is removed from the content lines (at most)
    ("  ```\n    four\n  two\n x\n  ```\n", "  four\ntwo\nx\n", "  four\ntwo\nx\n"),
    # not fences: 4 spaces, backticks in a backtick info string, two characters
    ("    ```\nnot\n    ```\n", "    ```\nnot\n    ```\n", "    ```\nnot\n    ```\n"),
    ("```a`b```\nplain\n", "```a`b```\nplain\n", "```a`b```\nplain\n"),
    ("``\nx\n``\n", "``\nx\n``\n", "``\nx\n``\n"),
    ("~~~a`b\nok\n~~~\n", "ok\n", "ok\n"),
    # CRLF line endings
    ("```\r\nwin\r\n```\r\n", "win\r\n", "win\r\n"),
    (CODE_ANSWER, CODE_FIRST, CODE_LAST),
]


@pytest.mark.parametrize(("answer", "first", "last"), CASES)
def test_fence_rules(answer: str, first: str, last: str) -> None:
    assert extract(answer) == first
    assert extract(answer, last=True) == last


def _fed(pieces: list[str], *, last: bool) -> tuple[str, list[str]]:
    extractor = FenceExtractor(last=last)
    written = [extractor.feed(piece) for piece in pieces]
    written.append(extractor.finish())
    return "".join(written), written


@pytest.mark.parametrize(("answer", "first", "last"), CASES)
def test_one_character_per_delta(answer: str, first: str, last: str) -> None:
    assert _fed(list(answer), last=False)[0] == first
    assert _fed(list(answer), last=True)[0] == last


def test_the_first_block_is_written_while_it_arrives() -> None:
    extractor = FenceExtractor()
    assert extractor.feed("Intro\n`") == ""
    assert extractor.feed("``py") == ""
    assert extractor.feed("thon\nline 1\nli") == "line 1\nli"  # decided: cannot close
    assert extractor.feed("ne 2\n``") == "ne 2\n"  # "``" may still be the closing fence
    assert extractor.feed("`") == ""
    assert extractor.feed("\nmore prose\n```\nsecond\n```\n") == ""
    assert extractor.finish() == ""
    last = FenceExtractor(last=True)
    assert last.feed("```\nx\n```\n```\ny\n") == ""  # the last one is known only at the end
    assert last.finish() == "y\n"


#: Answers made of lines that often are, or nearly are, fences.
_LINE = st.tuples(
    st.sampled_from(["", " ", "   ", "    ", "\t"]),
    st.sampled_from(["", "``", "```", "````", "~~~", "~~~~", "`", "~"]),
    st.sampled_from(["", " ", "py", "a`b", " x ", "é", "\r"]),
    st.sampled_from(["\n", "\n", "\r\n", ""]),
).map("".join)
_ANSWERS = st.one_of(
    st.lists(_LINE, max_size=10).map("".join),
    st.text(st.sampled_from("`~ \n\rapé\t"), max_size=40),
)


def _cuts(text: str, data: st.DataObject) -> list[str]:
    points = sorted(
        data.draw(st.lists(st.integers(0, len(text)), max_size=12, unique=True), label="cuts")
    )
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=400, deadline=None)
@given(_ANSWERS, st.booleans(), st.data())
def test_any_split_gives_the_output_of_one_delta(
    text: str, last: bool, data: st.DataObject
) -> None:
    whole = extract(text, last=last)
    assert _fed(_cuts(text, data), last=last)[0] == whole
    assert _fed(list(text), last=last)[0] == whole


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.sampled_from("ab \n`~"), max_size=30),
    st.sampled_from(["```", "````", "~~~", "``` py", "~~~~ sh x"]),
    st.text(st.sampled_from("ab \n"), max_size=30),
    st.data(),
)
def test_a_block_is_found_however_it_is_cut(
    before: str, fence: str, code: str, data: st.DataObject
) -> None:
    closing = fence.split(" ")[0]
    code = code if code.endswith("\n") or not code else code + "\n"
    prose = "".join(line for line in before.splitlines(keepends=True) if "`" not in line)
    prose = "".join(line for line in prose.splitlines(keepends=True) if "~" not in line)
    prose = prose if prose.endswith("\n") or not prose else prose + "\n"
    text = f"{prose}{fence}\n{code}{closing}\ntrailing"
    assert _fed(_cuts(text, data), last=False)[0] == code
    assert _fed(_cuts(text, data), last=True)[0] == code


# --- end to end --------------------------------------------------------------------------------


def test_extract_streams_the_first_block_before_the_answer_ends(
    fake_server: FakeOpenRouter,
) -> None:
    pieces = ["Here:\n``", "`sh\necho one\n", "echo two\n", "```\nbye\n"]
    gate = Gate(timeout=10)
    fake_server.enqueue(Scenario(content=pieces, gate=gate))
    proc = spawn(["--base-url", fake_server.url, "-m", "test/model", "-x", "hi"])
    # Piece 0 writes nothing (the fence is still open to doubt); the server then holds piece 2
    # back until "echo one" (piece 1) has reached rill's stdout.
    gate.release(1)
    seen = read_until(proc, b"echo one\n", timeout=10)
    assert seen == b"echo one\n"
    gate.release(2)
    seen += read_until(proc, b"echo two\n", timeout=10)
    gate.release(3)
    code, rest, err = finish(proc)
    assert code == 0, err
    assert seen + rest == b"echo one\necho two\n"
    assert not gate.timed_out


def test_extract_one_character_per_delta_and_history_keeps_the_answer(
    fake_server: FakeOpenRouter,
) -> None:
    first = run(["--base-url", fake_server.url, "-m", "fake/code", "-x", "code please"])
    assert first.returncode == 0, first.stderr
    assert first.stdout == CODE_FIRST.encode()
    assert first.stderr == b""
    last = run(["--base-url", fake_server.url, "-m", "fake/code", "--extract-last", "again"])
    assert last.returncode == 0, last.stderr
    assert last.stdout == CODE_LAST.encode()
    shown = run(["history", "show", "last", "--json"])
    answer = json.loads(shown.stdout)["exchanges"][-1]["answer"]["content"]
    assert answer == CODE_ANSWER


def test_extract_without_a_block_writes_the_whole_answer(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["no ", "code ", "here"]))
    result = run(["--base-url", fake_server.url, "-m", "m", "-x", "hi"])
    assert result.returncode == 0
    assert result.stdout == b"no code here"
    fake_server.enqueue(Scenario(content=["~~", "~\nti", "lde\n~", "~~\n"]))
    result = run(["--base-url", fake_server.url, "-m", "m", "--extract-last", "hi"])
    assert result.stdout == b"tilde\n"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-x", "-f", "json"], b"-x writes a code block as text"),
        (["--extract-last", "-f", "sse"], b"cannot be combined with -f sse"),
        (["-x", "--extract-last"], b"use one of them"),
    ],
)
def test_extract_is_for_text_only(
    fake_server: FakeOpenRouter, args: list[str], words: bytes
) -> None:
    result = run(["--base-url", fake_server.url, "-m", "fake/code", *args, "hi"])
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.count(b"\n") == 1
    assert fake_server.chat_requests == []


def test_on_a_terminal_control_sequences_are_shown_not_obeyed() -> None:
    import io

    from rill.events import Chunk, Done
    from rill.output.extract import ExtractRenderer
    from rill.terminal.safe import SafeText

    done = Done({"role": "assistant", "content": ""}, None, "stop", None, None, None, None)
    answer = "```\nprintf '\x1b]52;c;aGk=\x07'\r\n```\n"
    out = io.BytesIO()
    renderer = ExtractRenderer(out, tty=True, filt=SafeText())
    for char in answer:
        renderer.deltas(b"", [Chunk(char)])
    renderer.finish(done)
    assert out.getvalue().decode() == "printf '\u241b]52;c;aGk=\u2407'\n"
    piped = io.BytesIO()
    renderer = ExtractRenderer(piped)
    renderer.deltas(b"", [Chunk(answer)])
    renderer.finish(done)
    assert piped.getvalue().decode() == "printf '\x1b]52;c;aGk=\x07'\r\n"


def test_long_lines_are_not_kept_while_they_arrive() -> None:
    """Prose, and an opening fence's info string, are decided early: a long line arriving in
    small deltas is not held (and re-read) until its end."""
    for head, first in (("prose ", "prose " + "ab" * 50_000), ("~~~ ", ""), ("```py", "")):
        extractor = FenceExtractor()
        extractor.feed(head)
        for _ in range(50_000):
            extractor.feed("ab")
        assert extractor.held < 8
        assert extractor.finish() == first
