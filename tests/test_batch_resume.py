"""``rill batch``: template parameters as two words, the prompt prefix's separator, and an
output file that holds one line per id however often the batch is run again."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from rill.batch import compact_output, compacted, open_output, with_prefix
from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run, wait_until


def jsonl(*objs: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def batch(server: FakeOpenRouter, *args: str, input: bytes | None = None) -> Any:
    return run(["batch", "--base-url", server.url, "--no-history", *args], input=input)


def contents(server: FakeOpenRouter) -> list[str]:
    return sorted(r.body["messages"][-1]["content"] for r in server.chat_requests)


DONE = {"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
FAILED = {"code": 500, "message": "boom", "status": 500, "exit_code": 7}


# --- -p KEY VALUE --------------------------------------------------------------------------------


def test_template_params_take_two_words_like_the_prompt_command(
    fake_server: FakeOpenRouter, rill_env: Path, tmp_path: Path
) -> None:
    templates = rill_env / "templates"
    templates.mkdir(parents=True)
    (templates / "tr.toml").write_text('prompt = "To {{lang}} ({{tone}}):"\nmodel = "fake/echo"\n')
    words = tmp_path / "words.txt"
    words.write_text("hello\n")
    # -p before INPUT: the value is not taken for the input file, nor INPUT for a value.
    args = ["-t", "tr", "-p", "lang", "fr", "-p", "tone=dry", "--param", "x", "y z", str(words)]
    done = batch(fake_server, *args, "--lines")
    assert done.returncode == 0, done.stderr
    assert [r["message"]["content"] for r in lines_of(done.stdout)] == ["To fr (dry):\n\nhello"]
    lone = batch(fake_server, str(words), "--lines", "-t", "tr", "-p", "lang")
    assert lone.returncode == 2
    assert b"must be KEY VALUE" in lone.stderr


# --- --prompt-prefix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "joined"),
    [
        ("Translate to French:", "Translate to French:\nhello"),
        ("Translate to French: ", "Translate to French: hello"),
        ("Context.\n\n", "Context.\n\nhello"),
        ("Tab\t", "Tab\thello"),
        ("", "hello"),
    ],
)
def test_with_prefix_adds_a_newline_unless_the_prefix_ends_with_whitespace(
    prefix: str, joined: str
) -> None:
    assert with_prefix(prefix, "hello") == joined


def test_prompt_prefix_is_joined_by_a_newline_end_to_end(fake_server: FakeOpenRouter) -> None:
    data = jsonl({"id": 1, "prompt": "one"}, {"id": 2, "prompt": "two"})
    done = batch(fake_server, "-m", "fake/echo", "--prompt-prefix", "Answer briefly.", input=data)
    assert done.returncode == 0, done.stderr
    assert contents(fake_server) == ["Answer briefly.\none", "Answer briefly.\ntwo"]


# --- -o FILE: one line per id --------------------------------------------------------------------


def test_a_rerun_replaces_failed_lines_and_sends_only_what_failed(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    source = tmp_path / "items.jsonl"
    source.write_bytes(jsonl(*({"id": i, "prompt": f"item {i}"} for i in range(1, 5))))
    out = tmp_path / "out.jsonl"
    args = [str(source), "-o", str(out), "-j", "1", "-m", "fake/echo"]
    ok, denied = Scenario(content=["ok"]), Scenario.error(401)
    fake_server.enqueue(ok, denied, ok, denied)
    first = batch(fake_server, *args)
    assert first.returncode == 4
    assert [("exit_code" in r) for r in lines_of(out.read_bytes())] == [False, True, False, True]
    os.chmod(out, 0o640)

    fake_server.reset()
    second = batch(fake_server, *args)
    assert second.returncode == 0, second.stderr
    assert contents(fake_server) == ["item 2", "item 4"]  # done ids are skipped
    results = lines_of(out.read_bytes())
    assert [r["id"] for r in results] == [1, 2, 3, 4]  # one line each, in their first places
    assert [r["message"]["content"] for r in results] == ["ok", "item 2", "ok", "item 4"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the rewrite keeps the file's mode

    fake_server.reset()
    before = (out.read_bytes(), out.stat().st_ino)
    third = batch(fake_server, *args)
    assert third.returncode == 0, third.stderr
    assert fake_server.chat_requests == []
    assert (out.read_bytes(), out.stat().st_ino) == before  # nothing to change: not rewritten
    assert b"0 done, 0 failed, 4 skipped" in third.stderr


def test_a_symlinked_output_file_is_rewritten_behind_its_link(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    real = tmp_path / "real.jsonl"
    real.write_bytes(jsonl({"id": 1, **FAILED}))
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    done = batch(
        fake_server, "-o", str(link), "-m", "fake/echo", input=jsonl({"id": 1, "prompt": "a"})
    )
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert [r["message"]["content"] for r in lines_of(real.read_bytes())] == ["a"]


def test_the_output_file_may_not_be_the_input(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    data = jsonl({"id": 1, "prompt": "a"})
    source.write_bytes(data)
    done = batch(fake_server, str(source), "-o", str(source))
    assert done.returncode == 2
    assert b"is the input file" in done.stderr
    assert source.read_bytes() == data and fake_server.chat_requests == []


def test_compacted_keeps_one_line_per_id() -> None:
    lines = [
        {"id": 1, **FAILED},
        {"id": 2, **DONE},
        {"id": None, "code": "bad_input", "message": "line 3: not valid JSON", "line": 3},
        {"id": 1, **FAILED, "message": "later"},
        {"id": 2, **FAILED},  # an answered id keeps its answer (it would be skipped as done)
        {"id": "1", **DONE},  # a different id: "1" is not 1
        {"id": None, "code": "bad_input", "message": "line 3: not valid JSON", "line": 3},
        {"finish_reason": "stop"},  # not a batch line
    ]
    data = jsonl(*lines) + b"\n" + b'{"id": 3, "mess'
    new = compacted(data)
    assert new is not None
    assert lines_of(new) == [
        {"id": 1, **FAILED, "message": "later"},
        {"id": 2, **DONE},
        lines[2],
        {"id": "1", **DONE},
    ]
    assert compacted(new) is None
    assert compacted(b"") is None


def test_no_rewrite_while_another_run_appends(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(jsonl({"id": 1, **FAILED}, {"id": 1, **DONE}))
    other = open_output(path)  # another run, still appending
    mine = open_output(path)
    try:
        assert compact_output(mine, path) is False
        assert len(lines_of(path.read_bytes())) == 2
        os.close(other)  # the other run is done: this one, ending last, compacts
        other = -1
        assert compact_output(mine, path) is True
        assert lines_of(path.read_bytes()) == [{"id": 1, **DONE}]
    finally:
        os.close(mine)
        if other >= 0:
            os.close(other)


def test_a_run_that_waited_for_a_rewrite_appends_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(jsonl({"id": 1, **FAILED}, {"id": 1, **DONE}))
    rewriting = open_output(path)
    fcntl.flock(rewriting, fcntl.LOCK_EX)  # as compact_output holds it while it rewrites
    opened: list[int] = []
    waiter = threading.Thread(target=lambda: opened.append(open_output(path)), daemon=True)
    waiter.start()
    try:
        waiter.join(0.3)
        assert opened == []  # waits for the rewrite to finish
        assert compact_output(rewriting, path) is True
    finally:
        os.close(rewriting)
    wait_until(lambda: opened, 5, "the waiting run to open the file")
    fd = opened[0]
    try:
        assert os.path.samestat(os.fstat(fd), path.stat())  # the new file, not the replaced one
        os.write(fd, jsonl({"id": 2, **DONE}))
    finally:
        os.close(fd)
    assert [r["id"] for r in lines_of(path.read_bytes())] == [1, 2]


def test_params_without_a_template_are_a_usage_error_like_the_prompt_commands(
    fake_server: FakeOpenRouter,
) -> None:
    data = jsonl({"id": 1, "prompt": "one"})
    done = batch(fake_server, "-p", "lang", "fr", input=data)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == (
        "rill: -p fills a template's placeholders: give the template with -t NAME"
        " (see rill batch --help)\n"
    )
    assert fake_server.chat_requests == []
    prompt = run(["--base-url", fake_server.url, "-p", "lang", "fr", "hi"])
    assert prompt.returncode == 2
    assert prompt.stderr.decode().split(" (see")[0] == done.stderr.decode().split(" (see")[0]
