"""ChatClient and protocol: request shape, error bodies of every shape, the retry policy."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rill.config.settings import Settings, resolve_paths
from rill.errors import (
    APIError,
    AuthError,
    ConfigError,
    CreditsError,
    NetworkError,
    RateLimitError,
    RillError,
)
from rill.stream.client import ChatClient, RetryPolicy, make_http_client
from rill.stream.control import Control
from rill.stream.protocol import Request, build_payload, parse_error_body

KEY = "sk-or-v1-0123456789abcdef"


def settings(base_url: str = "https://openrouter.ai/api/v1", **kw: Any) -> Settings:
    kw.setdefault("api_key", KEY)
    return Settings(base_url=base_url, model="m/x", paths=resolve_paths({}), **kw)


class RecordedWaits(RetryPolicy):
    """Retries as usual, but the waits are written down instead of slept."""

    def __init__(self, retries: int, slept: list[float]) -> None:
        super().__init__(retries)
        self.slept = slept

    def wait(self, attempt: int, failure: RillError, control: Control) -> None:
        self.slept.append(self.delay(attempt, failure))


def client(handler: Any, base_url: str = "https://openrouter.ai/api/v1", **kw: Any):
    slept: list[float] = []
    s = settings(base_url, **kw)
    http = make_http_client(s, httpx.MockTransport(handler))
    return ChatClient(s, http, policy=RecordedWaits(s.retries, slept)), slept


def request(**kw: Any) -> Request:
    return Request(messages=[{"role": "user", "content": "hi"}], model="m/x", **kw)


def sse_ok(_req: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=b"data: x\n\n"
    )


def test_openrouter_request_has_auth_attribution_and_explicit_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return sse_ok(req)

    c, _ = client(handler)
    with c.open(request(max_tokens=100, reasoning_effort="low")):
        pass
    req = seen[0]
    assert req.url == "https://openrouter.ai/api/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["x-openrouter-title"] == "rill"
    assert req.headers["x-title"] == "rill"
    assert req.headers["x-openrouter-categories"] == "cli-agent"
    assert req.headers["http-referer"]
    body = json.loads(req.content)
    assert body == {
        "model": "m/x",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 100,
        "reasoning": {"effort": "low"},
    }


def test_generic_server_gets_no_openrouter_fields_and_asks_for_usage() -> None:
    body = build_payload(request(reasoning_effort="high"), openrouter=False)
    assert body["stream_options"] == {"include_usage": True}
    assert body["reasoning_effort"] == "high"
    assert "reasoning" not in body
    assert "usage" not in body


def test_extra_fields_win_and_merge_dicts() -> None:
    body = build_payload(
        request(reasoning_effort="low", extra={"reasoning": {"exclude": True}, "top_p": 0.5}),
        openrouter=True,
    )
    assert body["reasoning"] == {"effort": "low", "exclude": True}
    assert body["top_p"] == 0.5


@pytest.mark.parametrize(
    ("status", "cls", "exit_code"),
    [
        (400, APIError, 7),
        (401, AuthError, 4),
        (403, AuthError, 4),
        (402, CreditsError, 5),
        (404, APIError, 7),
        (429, RateLimitError, 6),
        (500, APIError, 7),
        (502, APIError, 7),
        (503, APIError, 7),
        (524, APIError, 7),
    ],
)
def test_status_maps_to_typed_error(status: int, cls: type, exit_code: int) -> None:
    def handler(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": status, "message": f"nope {status}"}})

    c, slept = client(handler, retries=0)
    with pytest.raises(cls) as info, c.open(request()):
        pass
    assert info.value.exit_code == exit_code
    assert info.value.status == status
    assert info.value.message == f"nope {status}"
    assert slept == []


def test_error_bodies_of_every_shape() -> None:
    raw = json.dumps({"error": {"message": "slow down upstream"}})
    code, msg, _ = parse_error_body(
        429,
        json.dumps(
            {
                "error": {
                    "code": 429,
                    "message": "Provider returned error",
                    "metadata": {"raw": raw, "provider_name": "Groq"},
                }
            }
        ),
    )
    assert (code, msg) == (429, "[Groq] slow down upstream")
    code, msg, _ = parse_error_body(
        404,
        json.dumps(
            {
                "error": {
                    "message": "gone",
                    "error_type": "not_found",
                    "http_status": 404,
                    "availability": {},
                }
            }
        ),
    )
    assert (code, msg) == (404, "gone")
    code, msg, _ = parse_error_body(
        400, json.dumps({"object": "error", "message": "bad", "type": "x", "code": 400})
    )
    assert (code, msg) == (400, "bad")
    code, msg, _ = parse_error_body(
        400, json.dumps({"error": {"message": "m", "type": "t", "param": None, "code": "bad_arg"}})
    )
    assert (code, msg) == ("bad_arg", "m")
    code, msg, _ = parse_error_body(
        502, "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
    )
    assert (code, msg) == (502, "502 Bad Gateway")
    code, msg, _ = parse_error_body(500, "")
    assert (code, msg) == (500, "the server gave no error details")


def test_retries_429_honouring_retry_after_then_succeeds() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"message": "slow"}}),
        httpx.Response(503, json={"error": {"message": "busy"}}),
    ]

    def handler(req: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else sse_ok(req)

    c, slept = client(handler, retries=2)
    with c.open(request()) as response:
        assert response.status_code == 200
    assert slept[0] == 2.0
    assert 0 < slept[1] <= 1.5  # jittered backoff for the second attempt


def test_rate_limit_after_retries_exhausted() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(429, headers={"retry-after": "0"}, json={"error": {"message": "no"}})

    c, slept = client(handler, retries=2)
    with pytest.raises(RateLimitError), c.open(request()):
        pass
    assert len(calls) == 3
    assert slept == [0.0, 0.0]


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422, 500])
def test_non_retryable_statuses_are_not_retried(status: int) -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(status, json={"error": {"message": "no"}})

    c, _ = client(handler, retries=3)
    with pytest.raises(APIError), c.open(request()):
        pass
    assert len(calls) == 1


def test_long_retry_after_is_not_waited_out() -> None:
    def handler(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, headers={"retry-after": "3600"}, json={"error": {"message": "x"}}
        )

    c, slept = client(handler, retries=3)
    with pytest.raises(RateLimitError), c.open(request()):
        pass
    assert slept == []


def test_connect_errors_are_retried_then_reported() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=req)

    c, slept = client(handler, retries=1)
    with pytest.raises(NetworkError) as info, c.open(request()):
        pass
    assert len(calls) == 2 and len(slept) == 1
    assert info.value.exit_code == 8
    assert "Connection refused" in info.value.message


def test_stream_options_rejected_is_retried_without_it() -> None:
    bodies = []

    def handler(req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        bodies.append(body)
        if "stream_options" in body:
            return httpx.Response(
                400, json={"error": {"message": "Unrecognized request argument: stream_options"}}
            )
        return sse_ok(req)

    c, slept = client(handler, base_url="http://127.0.0.1:1/v1", retries=0)
    with c.open(request()):
        pass
    assert [("stream_options" in b) for b in bodies] == [True, False]
    assert slept == []


def test_key_never_over_plain_http_to_remote_host() -> None:
    with pytest.raises(ConfigError) as info:
        settings("http://example.com/v1").check_transport()
    assert info.value.exit_code == 3
    assert KEY not in info.value.message
    settings("http://127.0.0.1:8080/v1").check_transport()
    settings("http://localhost:8080/v1").check_transport()
    settings("http://[::1]:8080/v1").check_transport()
    settings("http://example.com/v1", api_key=None).check_transport()


def test_openrouter_needs_a_key() -> None:
    with pytest.raises(ConfigError) as info:
        settings(api_key=None).check_transport()
    assert "OPENROUTER_API_KEY" in info.value.message
