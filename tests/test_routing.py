"""OpenRouter routing flags and prompt-caching breakpoints (rill.input.routing, .caching)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rill.config.settings import Settings, resolve_settings
from rill.errors import ConfigError, UsageError
from rill.input.caching import MAX_BREAKPOINTS, mark_cache, needs_breakpoints, split_at
from rill.input.routing import (
    RoutingFlags,
    make_flags,
    merge_under,
    routed_model,
    routing_fields,
)
from rill.stream.protocol import Request, build_payload

OPENROUTER = "https://openrouter.ai/api/v1"
LOCAL = "http://127.0.0.1:8080/v1"


def settings(base_url: str = OPENROUTER, **kw: Any) -> Settings:
    return Settings(base_url=base_url, model="m/one", api_key="sk-or-v1-x", **kw)


def test_each_flag_sets_its_provider_key() -> None:
    flags = make_flags(
        provider=["openai", "azure"],
        only=["openai"],
        ignore=["deepinfra"],
        sort="throughput",
        no_fallbacks=True,
        zdr=True,
        deny_data_collection=True,
    )
    assert routing_fields(flags, settings(), "m/one") == {
        "provider": {
            "order": ["openai", "azure"],
            "only": ["openai"],
            "ignore": ["deepinfra"],
            "sort": "throughput",
            "allow_fallbacks": False,
            "zdr": True,
            "data_collection": "deny",
        }
    }


def test_no_flags_no_table_sends_nothing() -> None:
    assert routing_fields(RoutingFlags(), settings(), "m/one") == {}
    assert routing_fields(RoutingFlags(), settings(LOCAL), "m/one") == {}


def test_fallbacks_make_the_models_list_primary_first() -> None:
    flags = make_flags(fallback=["b/two", "c/three"])
    assert routing_fields(flags, settings(), "a/one") == {"models": ["a/one", "b/two", "c/three"]}


def test_online_uses_the_online_variant_of_every_model() -> None:
    flags = make_flags(online=True, fallback=["b/two"])
    model = routed_model(flags, "a/one")
    assert model == "a/one:online"
    assert routed_model(flags, "a/one:online") == "a/one:online"
    assert routing_fields(flags, settings(), model)["models"] == ["a/one:online", "b/two:online"]
    assert routed_model(RoutingFlags(), "a/one") == "a/one"


def test_config_table_gives_defaults_and_flags_win_per_key() -> None:
    table = {"order": ["together"], "sort": "price", "zdr": True}
    flags = make_flags(sort="latency", ignore=["x"])
    fields = routing_fields(flags, settings(provider=table), "m")
    assert fields["provider"] == {
        "order": ["together"],
        "sort": "latency",
        "zdr": True,
        "ignore": ["x"],
    }


def test_config_table_is_not_sent_to_other_servers() -> None:
    assert routing_fields(RoutingFlags(), settings(LOCAL, provider={"sort": "price"}), "m") == {}


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"provider": ["a"]}, "--provider"),
        ({"only": ["a"]}, "--only"),
        ({"ignore": ["a"]}, "--ignore"),
        ({"sort": "price"}, "--sort"),
        ({"no_fallbacks": True}, "--no-fallbacks"),
        ({"zdr": True}, "--zdr"),
        ({"deny_data_collection": True}, "--deny-data-collection"),
        ({"fallback": ["b"]}, "--fallback"),
        ({"online": True}, "--online"),
    ],
)
def test_every_flag_is_refused_for_another_server(kw: dict[str, Any], flag: str) -> None:
    with pytest.raises(UsageError) as caught:
        routing_fields(make_flags(**kw), settings(LOCAL), "m")
    assert caught.value.message.startswith(f"{flag} is OpenRouter-only")
    assert caught.value.exit_code == 2


def test_another_host_counts_as_openrouter_when_told() -> None:
    fields = routing_fields(make_flags(zdr=True), settings(LOCAL, speaks_openrouter=True), "m")
    assert fields == {"provider": {"zdr": True}}


def test_bad_sort_and_empty_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--sort must be one of price, throughput, latency"):
        make_flags(sort="cheap")
    with pytest.raises(UsageError, match="--provider needs a name"):
        make_flags(provider=[" "])


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"sort": "cheap"}, "sort must be one of"),
        ({"order": "openai"}, "order must be list"),
        ({"order": [1]}, "order must be a list of provider names"),
        ({"zdr": "yes"}, "zdr must be bool"),
        ({"data_collection": "maybe"}, "data_collection must be allow or deny"),
    ],
)
def test_a_bad_table_is_a_config_error(table: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        routing_fields(RoutingFlags(), settings(provider=table), "m")


def test_explicit_options_win_inside_the_provider_object() -> None:
    fields = {"provider": {"order": ["a"], "zdr": True}, "models": ["x", "y"]}
    extra = {"provider": {"order": ["b"]}, "temperature": 1}
    assert merge_under(extra, fields) == {
        "provider": {"order": ["b"], "zdr": True},
        "models": ["x", "y"],
        "temperature": 1,
    }


def test_the_fields_reach_the_body() -> None:
    flags = make_flags(only=["openai"], fallback=["b/two"])
    fields = routing_fields(flags, settings(), "a/one")
    body = build_payload(
        Request([{"role": "user", "content": "hi"}], "a/one", extra=fields), openrouter=True
    )
    assert body["provider"] == {"only": ["openai"]}
    assert body["models"] == ["a/one", "b/two"]


def test_settings_read_the_table_and_the_openrouter_switch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[provider]\nsort = "price"\nonly = ["openai"]\n')
    env = {"RILL_HOME": str(home), "RILL_BASE_URL": LOCAL}
    plain = resolve_settings({}, env=env)
    assert plain.provider == {"sort": "price", "only": ["openai"]}
    assert not plain.openrouter
    told = resolve_settings({}, env={**env, "RILL_OPENROUTER": "1"})
    assert told.openrouter
    assert told.model == "openrouter/auto"  # everything OpenRouter-specific follows
    (home / "config.toml").write_text("openrouter = true\n")
    assert resolve_settings({}, env=env).openrouter
    assert not resolve_settings({}, env={**env, "RILL_OPENROUTER": "0"}).openrouter


# --- prompt caching ---------------------------------------------------------------------------

BREAK = {"type": "ephemeral"}


def test_only_models_that_need_explicit_breakpoints_get_them() -> None:
    assert needs_breakpoints(["anthropic/claude-sonnet-4.5"])
    assert needs_breakpoints(["google/gemini-2.5-pro"])
    assert needs_breakpoints(["openai/gpt-4o", "anthropic/claude-3.5-haiku"])  # a fallback
    assert not needs_breakpoints(["openai/gpt-4o", None])
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert mark_cache(messages, ["u"], ["openai/gpt-4o"]) is messages


def test_system_prompt_and_stdin_get_breakpoints() -> None:
    stdin = "a long document\n" * 50
    messages = [
        {"role": "system", "content": "be terse"},
        {"role": "user", "content": f"summarise\n\n{stdin}"},
    ]
    out = mark_cache(messages, [stdin, None], ["anthropic/claude-sonnet-4.5"])
    assert out[0]["content"] == [{"type": "text", "text": "be terse", "cache_control": BREAK}]
    assert out[1]["content"] == [
        {"type": "text", "text": f"summarise\n\n{stdin}", "cache_control": BREAK}
    ]
    assert messages[0]["content"] == "be terse"  # the input is left alone (history keeps it)


def test_template_text_then_question_splits_the_message() -> None:
    template = "Here is the style guide: ..." * 10
    text = f"{template}\n\nis this ok?"
    out = mark_cache([{"role": "user", "content": text}], [template], ["anthropic/claude"])
    parts = out[0]["content"]
    assert parts == [
        {"type": "text", "text": template, "cache_control": BREAK},
        {"type": "text", "text": "\n\nis this ok?"},
    ]
    assert "".join(p["text"] for p in parts) == text


def test_attachments_stay_and_only_text_parts_are_split() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    content = [{"type": "text", "text": "ctx\n\nq"}, image]
    out = mark_cache([{"role": "user", "content": content}], ["ctx"], ["anthropic/claude"])
    assert out[0]["content"] == [
        {"type": "text", "text": "ctx", "cache_control": BREAK},
        {"type": "text", "text": "\n\nq"},
        image,
    ]


def test_never_more_than_four_breakpoints() -> None:
    pieces = [f"piece{i}" for i in range(6)]
    text = " ".join(pieces)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": text}]
    out = mark_cache(messages, pieces, ["anthropic/claude"])
    marks = sum("cache_control" in p for m in out for p in m["content"])
    assert marks == MAX_BREAKPOINTS


def test_no_long_context_leaves_the_user_message_a_string() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert mark_cache(messages, [None, ""], ["anthropic/claude"])[0]["content"] == "hi"


def test_split_at_gives_the_text_back() -> None:
    assert split_at("abcdef", ["bc", "zz", "ef"]) == [("abc", True), ("def", True)]
    assert split_at("abc", []) == [("abc", False)]
