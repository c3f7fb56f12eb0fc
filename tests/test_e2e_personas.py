"""Other OpenAI-compatible servers' dialects (PROTOCOL.md §9), through the installed rill."""

from __future__ import annotations

import json
import os

from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run


def _events(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _run(server: FakeOpenRouter, *args: str) -> tuple[int, list[dict], str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    result = run(
        ["--base-url", server.openai_url, "-m", "local", "-f", "jsonl", *args, "hi"], env=env
    )
    return result.returncode, _events(result.stdout), result.stderr.decode()


def test_openai_usage_only_when_asked_in_a_final_empty_choices_chunk(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.enqueue(Scenario(content=["Hel", "lo"], persona="openai", require_auth=False))
    code, events, err = _run(fake_server)
    assert code == 0, err
    done = events[-1]
    assert done["message"]["content"] == "Hello"
    assert done["usage"]["total_tokens"] > 0 and "cost" not in done["usage"]
    assert done["provider"] is None


def test_server_rejecting_stream_options_is_asked_again_without_it(
    fake_server: FakeOpenRouter,
) -> None:
    fake_server.enqueue(
        Scenario(
            content=["ok"],
            persona="openai",
            require_auth=False,
            reject_stream_options=True,
            repeat=2,
        )
    )
    code, events, err = _run(fake_server)
    assert code == 0, err
    assert events[-1]["message"]["content"] == "ok"
    bodies = [r.body for r in fake_server.chat_requests]
    assert ["stream_options" in b for b in bodies] == [True, False]


def test_llamacpp_legacy_reasoning_content_and_error_field(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(reasoning=["hmm"], content=["fine"], persona="llamacpp-legacy", require_auth=False)
    )
    code, events, err = _run(fake_server)
    assert code == 0, err
    assert [e["content"] for e in events if e["event"] == "reasoning"] == ["hmm"]
    assert events[-1]["message"] == {"role": "assistant", "content": "fine", "reasoning": "hmm"}

    fake_server.enqueue(
        Scenario(
            content=["par", "tial"],
            midstream_error_after=2,
            persona="llamacpp-legacy",
            require_auth=False,
        )
    )
    code, events, err = _run(fake_server)
    assert code == 7
    assert events[-1]["event"] == "error"
    assert events[-1]["partial"]["content"] == "partial"
    assert err.startswith("rill: ") and err.count("\n") == 1


def test_vllm_old_flat_error_body(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.error(400, persona="vllm-old", require_auth=False))
    code, events, err = _run(fake_server)
    assert code == 7
    assert events[-1]["event"] == "error" and events[-1]["status"] == 400
    assert events[-1]["message"] and events[-1]["message"] in err


def test_ollama_whole_tool_calls(fake_server: FakeOpenRouter) -> None:
    calls = [
        {"name": "get_time", "arguments": {"tz": "UTC"}},
        {"name": "get_date", "arguments": {}},
    ]
    fake_server.enqueue(Scenario(tool_calls=calls, persona="ollama"))
    code, events, err = _run(fake_server)
    assert code == 0, err
    done = events[-1]
    assert done["finish_reason"] == "tool_calls"
    names = [c["function"]["name"] for c in done["message"]["tool_calls"]]
    assert names == ["get_time", "get_date"]
    assert json.loads(done["message"]["tool_calls"][0]["function"]["arguments"]) == {"tz": "UTC"}


def test_tool_call_anomalies_over_http(fake_server: FakeOpenRouter) -> None:
    calls = [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}]
    fake_server.enqueue(
        Scenario(
            tool_calls=calls, tool_shared_index=True, tool_ids="duplicate", finish_reason="stop"
        )
    )
    result = run(["--base-url", fake_server.url, "-m", "m", "-f", "json", "hi"])
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["finish_reason"] == "tool_calls"
    tool_calls = done["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in tool_calls] == [{"x": 1}, {"y": 2}]
    assert len({c["id"] for c in tool_calls}) == 2


def test_crlf_cr_and_split_framing(fake_server: FakeOpenRouter) -> None:
    text = ["héllo ", "wörld ", "😀 done"]
    for scenario in (
        Scenario(content=text, line_ending="\r\n"),
        Scenario(content=text, line_ending="\r"),
        Scenario(content=text, split="bytes", split_seed=7, split_max=5),
        Scenario(content=text, no_final_newline=True, send_done=False),
    ):
        fake_server.enqueue(scenario)
        result = run(["--base-url", fake_server.url, "-m", "m", "hi"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode() == "".join(text)
