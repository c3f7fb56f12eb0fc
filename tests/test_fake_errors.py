"""Self-tests of the fake OpenRouter server: pre-stream errors, mid-stream errors, abrupt ends."""

from __future__ import annotations

import json

import pytest

from rill.fake import ERROR_KINDS, MSG_NO_AUTH, MSG_USER_NOT_FOUND, FakeOpenRouter, Scenario
from tests.fakeclient import chat, data_of, deltas, request, stream

ALL_ERRORS = [(status, kind) for status, kinds in ERROR_KINDS.items() for kind in kinds]
ALL_ERRORS += [(404, "availability"), (429, "availability"), (503, "availability"), (504, "html")]


@pytest.mark.parametrize(("status", "kind"), ALL_ERRORS)
def test_canned_pre_stream_errors(fake_server: FakeOpenRouter, status: int, kind: str) -> None:
    code, headers, body = request(
        fake_server, "/chat/completions", chat(f"fake/error-{status}-{kind}")
    )
    assert code == status
    if kind == "html":
        assert headers["Content-Type"] == "text/html"
        assert body.startswith(b"<html>") and str(status).encode() in body
        return
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert isinstance(error["message"], str) and error["message"]
    if kind == "availability":
        assert "code" not in error and error["http_status"] == status
        assert error["availability"]["requested_models"] == [f"fake/error-{status}-{kind}"]
        return
    assert error["code"] == status
    if status == 401:
        texts = {"user-not-found": MSG_USER_NOT_FOUND, "no-auth": MSG_NO_AUTH}
        assert error["message"] == texts.get(kind, "No auth credentials found")
    if (status, kind) == (402, "credits"):
        assert error["metadata"] == {"provider_name": None}
        assert error["message"].startswith("This request requires more credits")
    if (status, kind) == (429, "platform"):
        assert headers["Retry-After"] == "1"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert error["metadata"]["headers"]["X-RateLimit-Reset"] == headers["X-RateLimit-Reset"]
        assert error["metadata"]["limit_source"] == "openrouter_free_tier_daily"
    if (status, kind) == (429, "upstream"):
        assert error["message"] == "Provider returned error"
        assert isinstance(json.loads(error["metadata"]["raw"]), dict)
    if status == 503:
        assert error["availability"]["retryable"] is True


def test_default_kinds_and_model_selected_errors(fake_server: FakeOpenRouter) -> None:
    code, _, body = request(fake_server, "/chat/completions", chat("fake/error-400"))
    assert code == 400
    assert json.loads(body)["error"]["message"] == "fake/error-400 is not a valid model ID"
    assert request(fake_server, "/chat/completions", chat("fake/error-401"))[0] == 401
    # an unknown kind is not a canned name: the demo answer is served
    assert request(fake_server, "/chat/completions", chat("fake/error-401-nope"))[0] == 200


def test_error_sequence_then_success(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario.error(429, retry_after=0),
        Scenario.error(503, retry_after=0.5, headers={"X-Extra": "1"}),
        Scenario(content=["ok"]),
    )
    assert fake_server.pending == 3
    first = request(fake_server, "/chat/completions", chat())
    second = request(fake_server, "/chat/completions", chat())
    third = request(fake_server, "/chat/completions", chat(stream=False))
    assert (first[0], first[1]["Retry-After"]) == (429, "0")
    assert (second[0], second[1]["Retry-After"], second[1]["X-Extra"]) == (503, "0.5", "1")
    assert json.loads(second[2])["error"]["availability"]["retry_after"] == 0.5
    assert third[0] == 200
    assert json.loads(third[2])["choices"][0]["message"]["content"] == "ok"
    assert fake_server.pending == 0


def test_explicit_error_body_and_content_type(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(status=500, error_body="oops", content_type="text/plain"),
        Scenario(error_body={"error": {"message": "odd"}}),
    )
    code, headers, body = request(fake_server, "/chat/completions", chat())
    assert (code, headers["Content-Type"], body) == (500, "text/plain", b"oops")
    code, _, body = request(fake_server, "/chat/completions", chat())
    assert (code, json.loads(body)) == (200, {"error": {"message": "odd"}})


def test_midstream_error_documented_form(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["a", "b", "c"], midstream_error_after=2))
    r, raw = stream(fake_server)
    assert r.complete
    objs = data_of(raw)
    assert "[DONE]" not in objs
    assert [d["content"] for d in deltas(objs[:-1])] == ["", "a", "b"]
    err = objs[-1]
    assert list(err) == ["id", "object", "created", "model", "provider", "error", "choices"]
    assert err["error"]["code"] == 502 and err["error"]["metadata"]["error_type"]
    assert err["choices"] == [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]


def test_midstream_error_variants(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            content=["a"],
            midstream_error={"code": "server_error", "message": "boom"},
            midstream_error_choices_empty=True,
            done_after_error=True,
        )
    )
    objs = data_of(stream(fake_server)[1])
    assert objs[-1] == "[DONE]"
    assert objs[-2]["choices"] == [] and objs[-2]["error"]["code"] == "server_error"
    assert deltas(objs[:-2])[-1]["content"] == "a"


@pytest.mark.parametrize("model", [None, "fake/truncated"])
def test_abrupt_close(fake_server: FakeOpenRouter, model: str | None) -> None:
    if model is None:
        fake_server.enqueue(Scenario(content=["a", "b", "c"], abrupt_close_after=2))
    r, raw = stream(fake_server, chat(model or "openai/gpt-4o"))
    assert r.status == 200 and not r.complete
    objs = data_of(raw)
    assert "[DONE]" not in objs
    assert all(o["choices"][0]["finish_reason"] is None for o in objs)
    assert len(objs) == 1 + (2 if model is None else 3)


def test_silent_failure(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.silent_failure())
    objs = data_of(stream(fake_server)[1])
    assert all(not d.get("content") for d in deltas(objs[:-1]))
    finish = objs[-3]["choices"][0]
    assert (finish["finish_reason"], finish["native_finish_reason"]) == ("stop", "network_error")
