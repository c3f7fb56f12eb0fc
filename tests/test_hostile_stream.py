"""A hostile upstream against the installed ``rill``: an endless line, JSON nested 100,000 deep,
the key echoed in every error field, fields of the wrong type, NaN usage. Each run ends with one
``rill:`` line and the documented exit code, nothing of the key anywhere, and a readable history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rill.fake import FakeOpenRouter
from tests.e2e import run


def ask(fake_server: FakeOpenRouter, model: str, *extra: str) -> tuple[int, str, str]:
    done = run(["--base-url", fake_server.url, "-m", model, *extra, "hi"], timeout=60)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()


def everything_written(home: Path) -> str:
    """Every file under RILL_HOME, as text."""
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file()
    )


def last_exchange() -> dict:  # type: ignore[type-arg]
    shown = run(["history", "show", "last", "--json"])
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["exchanges"][-1]  # type: ignore[no-any-return]


def test_a_line_that_never_ends_is_an_upstream_error_with_the_text_kept(
    fake_server: FakeOpenRouter,
) -> None:
    code, out, err = ask(fake_server, "fake/hostile-endless-line-70m")
    assert code == 7, err
    assert err.count("\n") == 1 and "larger than 64 MiB" in err, err
    assert "Traceback" not in err
    exchange = last_exchange()
    assert exchange["finish_reason"] == "error"


def test_a_line_below_the_cap_still_works(fake_server: FakeOpenRouter) -> None:
    """A 4 MiB line is a real stream's worst case: it must not trip the cap (it is not JSON, so
    the answer then fails on its content, exit 7, after being read whole)."""
    code, _out, err = ask(fake_server, "fake/hostile-endless-line-4m")
    assert "larger than" not in err and code == 7, err


@pytest.mark.parametrize("where", ["content", "reasoning"])
def test_deep_json_in_a_stream_is_an_upstream_error(
    fake_server: FakeOpenRouter, where: str
) -> None:
    code, _out, err = ask(fake_server, f"fake/hostile-deep-{where}")
    assert code == 7, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert last_exchange()["finish_reason"] == "error"


def test_deep_json_in_an_error_body_is_one_line(fake_server: FakeOpenRouter) -> None:
    code, _out, err = ask(fake_server, "fake/hostile-deep-error")
    assert code == 7, err
    assert err.count("\n") == 1 and "nested too deep" in err, err


@pytest.mark.parametrize("place", ["code", "metadata", "message", "malformed", "midstream"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_key_echoed_anywhere_in_an_error_goes_nowhere(
    fake_server: FakeOpenRouter, rill_env: Path, place: str, fmt: str
) -> None:
    key = fake_server.api_key
    code, out, err = ask(fake_server, f"fake/hostile-key-{place}", "-f", fmt)
    assert code != 0
    assert key not in out and key not in err
    assert key[:20] not in out + err  # not even a prefix left by a cut
    assert key not in everything_written(rill_env)
    if fmt == "json":
        assert "exit_code" in json.loads(out)


@pytest.mark.parametrize("field", ["id", "model", "provider", "finish_reason"])
def test_fields_of_the_wrong_type_are_stored_readably(
    fake_server: FakeOpenRouter, field: str
) -> None:
    code, _out, err = ask(fake_server, f"fake/hostile-type-{field}")
    assert "Traceback" not in err
    exchange = last_exchange()  # history show still reads the chat
    assert exchange["answer"]["content"] is not None
    again = run(["-c", "--base-url", fake_server.url, "-m", "fake/echo", "more"])
    assert again.returncode == 0, again.stderr
    assert code in (0, 7)


@pytest.mark.parametrize("model", ["fake/hostile-nan", "fake/hostile-infinity"])
def test_numbers_that_are_not_numbers_never_reach_usage(
    fake_server: FakeOpenRouter, model: str
) -> None:
    code, _out, err = ask(fake_server, model, "--stats")
    assert code == 0, err
    stats = err.replace(model, "")  # the model's own name says nan or infinity
    assert "nan" not in stats.lower() and "inf" not in stats.lower(), err
    usage = run(["usage", "--json"])
    assert usage.returncode == 0, usage.stderr
    assert "NaN" not in usage.stdout.decode() and "Infinity" not in usage.stdout.decode()


def test_a_batch_line_nested_too_deep_fails_alone(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    deep = b'{"id": "deep", "prompt": "x", "options": {"a": ' + b"[" * 100_000 + b"]" * 100_000
    items = tmp_path / "items.jsonl"
    items.write_bytes(deep + b"}}\n" + json.dumps({"id": "ok", "prompt": "fine"}).encode() + b"\n")
    out = tmp_path / "out.jsonl"
    done = run(
        ["batch", str(items), "-o", str(out), "--base-url", fake_server.url, "-m", "fake/echo"]
    )
    assert done.returncode == 2, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_line = {line.get("line"): line for line in lines}
    assert by_line[1]["exit_code"] == 2 and "nested too deep" in by_line[1]["message"]
    assert [line["message"]["content"] for line in lines if line["id"] == "ok"] == ["fine"]
    # A second run reads the output file (deep line and all) and sends only what failed.
    again = run(
        ["batch", str(items), "-o", str(out), "--base-url", fake_server.url, "-m", "fake/echo"]
    )
    assert again.returncode == 2 and b"Traceback" not in again.stderr
