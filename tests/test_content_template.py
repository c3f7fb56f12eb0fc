"""ContentTemplate: content chunks read without a full parse must fold exactly as parsed ones.

The reference is the same stream folded with learning switched off (every chunk parsed by
json.loads and folded by ``Transcript.add_chunk``).
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from rill.errors import RillError
from rill.events import Chunk, Delta
from rill.stream.chunks import ChunkDecoder
from rill.stream.sse import ServerSentEvent
from rill.stream.template import ContentTemplate
from rill.stream.transcript import Transcript
from tests.chunks import chunk_obj

#: Contents whose JSON tokens exercise every branch of the string scanner.
TRICKY = [
    "plain",
    " with spaces ",
    "",
    'a "quoted" word',
    "back\\slash",
    "line\nbreak\r\n",
    "\ttab",
    "naïve café",
    "日本語",
    "😀 emoji",
    "\ud800",  # a lone surrogate: json.dumps writes \ud800, json.loads gives it back
    "\x00nul\x1f",
    '}],"choices":[',
    '","finish_reason":"stop',
    "/slash/",
]


class NoLearning(ContentTemplate):
    __slots__ = ()

    def learn(self, data: str, obj: dict[str, Any]) -> None:
        pass


class Probe(Transcript):
    """A transcript whose content template the test can look at."""

    def __init__(self, template: ContentTemplate | None = None) -> None:
        self.template = template if template is not None else ContentTemplate()
        super().__init__(self.template)


def base_chunk(content: Any = "x", **over: Any) -> dict[str, Any]:
    return chunk_obj({"content": content}, **over)


def dumps(obj: Any, *, ascii_: bool = False, spaced: bool = False) -> str:
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(obj, ensure_ascii=ascii_, separators=separators)


def fold(datas: list[str], transcript: Transcript) -> list[tuple[str, Any]]:
    """Fold events one read at a time; the deltas (or the error) each read produced."""
    results: list[tuple[str, Any]] = []
    for data in datas:
        out: list[Delta] = []
        try:
            ChunkDecoder(transcript).decode([ServerSentEvent("message", data)], out)
        except RillError as exc:
            results.append(("error", (type(exc).__name__, exc.message, out)))
        else:
            results.append(("ok", out))
    return results


def state(t: Transcript) -> dict[str, Any]:
    return {
        "message": t.message(),
        "finish": t.final_finish_reason(),
        "usage": t.usage(),
        "meta": (t.id, t.model, t.provider),
        "done": t.done,
    }


def assert_same_as_parsed(datas: list[str]) -> Transcript:
    fast, slow = Probe(), Probe(NoLearning())
    assert fold(datas, fast) == fold(datas, slow)
    assert state(fast) == state(slow)
    return fast


def raw_control_token(content: str) -> str:
    """A chunk whose content token holds a raw control character (invalid JSON)."""
    return dumps(base_chunk("MARK")).replace('"MARK"', '"a\x01b"').replace("MARK", content)


def random_stream(seed: int) -> list[str]:
    rng = random.Random(seed)
    datas = []
    for _ in range(300):
        roll = rng.random()
        content: Any = rng.choice(TRICKY)
        over: dict[str, Any] = {}
        if roll < 0.05:
            over["id"] = f"gen-{rng.randint(1, 3)}"
        elif roll < 0.08:
            over["created"] = rng.randint(1, 3)
        elif roll < 0.10:
            content = rng.choice([None, 12, ["x"], {"a": 1}, True, [{"type": "text", "text": "t"}]])
        elif roll < 0.12:
            over["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        elif roll < 0.14:
            over["choices"] = [
                {
                    "index": 0,
                    "delta": {"content": content, "reasoning": "hm"},
                    "finish_reason": None,
                }
            ]
        elif roll < 0.15:
            over["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": "stop"}]
        elif roll < 0.16:
            over["error"] = {"code": 502, "message": "upstream went away"}
        if roll > 0.98:
            datas.append(raw_control_token(str(content)))
            continue
        datas.append(
            dumps(base_chunk(content, **over), ascii_=rng.random() < 0.2, spaced=rng.random() < 0.1)
        )
    return datas


@pytest.mark.parametrize("seed", range(12))
def test_random_streams_fold_exactly_as_when_every_chunk_is_parsed(seed: int) -> None:
    assert_same_as_parsed(random_stream(seed))


@pytest.mark.parametrize("content", TRICKY)
def test_each_tricky_content_after_a_learnt_chunk(content: str) -> None:
    for ascii_ in (False, True):
        datas = [
            dumps(base_chunk("first"), ascii_=ascii_),
            dumps(base_chunk(content), ascii_=ascii_),
        ]
        t = assert_same_as_parsed(datas)
        assert t.template.head is not None
        assert t.content == "first" + content


def test_a_matching_chunk_is_not_parsed() -> None:
    t = Probe()
    fold([dumps(base_chunk("a"))], t)
    assert t.template.head is not None and t.template.head.endswith('"content":"')
    # Only the template can read this: json.loads would reject the broken head.
    assert t.template.content(dumps(base_chunk("b"))) == "b"
    assert t.template.content(dumps(base_chunk("b", id="gen-2"))) is None
    assert t.template.content(dumps(base_chunk(None))) is None
    assert t.template.content(raw_control_token("x")) is None


@pytest.mark.parametrize("junk", ["1", "x", '"'])
def test_anything_between_the_token_and_the_tail_is_parsed_and_rejected(junk: str) -> None:
    good = dumps(base_chunk("a"))
    bad = dumps(base_chunk("b")).replace('"b"', f'"b"{junk}')
    results = fold([good, bad], Probe())
    assert results[1][0] == "error" and "malformed JSON" in results[1][1][1]


def test_raw_control_character_is_still_reported_as_malformed() -> None:
    t = Probe()
    results = fold([dumps(base_chunk("a")), raw_control_token("b")], t)
    assert results[0] == ("ok", [Chunk("a")])
    kind, (name, message, _out) = results[1]
    assert (kind, name) == ("error", "StreamError") and "malformed JSON" in message


def test_a_look_alike_key_is_not_taken_for_the_content() -> None:
    # The key x"content holds "" just before the real content: the probe tells them apart.
    obj = {"id": "g", 'x"content': "", "choices": [{"index": 0, "delta": {"content": "real"}}]}
    data = dumps(obj)
    assert data.index('"content":') < data.index('"delta"')
    t = Probe()
    fold([data], t)
    assert t.template.head is not None and t.template.head.endswith('"delta":{"content":"')
    follow = dumps(obj | {"choices": [{"index": 0, "delta": {"content": "next"}}]})
    assert_same_as_parsed([data, follow])
    assert t.template.content(follow) == "next"


def test_pretty_printed_chunks_are_learnt() -> None:
    datas = [json.dumps(base_chunk(c), indent=2) for c in ["a", "b\n", "c"]]
    t = assert_same_as_parsed(datas)
    assert t.template.content(datas[-1]) == "c"


def test_chunks_that_never_repeat_stop_being_learnt() -> None:
    # llama.cpp-like: a new "created" in every chunk, so no template ever matches.
    t = Probe()
    fold([dumps(base_chunk(f"p{i}", created=i)) for i in range(200)], t)
    assert t.template.learnt == 8
    assert t.content == "".join(f"p{i}" for i in range(200))


def test_a_template_that_keeps_matching_is_relearnt_when_the_stream_changes() -> None:
    t = Probe()
    datas = []
    for gen in range(12):  # 12 changes, each followed by a long run of matching chunks
        datas += [dumps(base_chunk(f"{gen}.{i} ", id=f"gen-{gen}")) for i in range(600)]
    fold(datas, t)
    assert t.template.learnt == 12
    assert t.template.content(datas[-1]) == "11.599 "


def test_chunks_without_an_id_are_not_learnt() -> None:
    # Until a chunk brings an id, each parsed chunk also updates the model and provider.
    datas = [
        '{"model":"a","choices":[{"delta":{"content":"x"}}]}',
        '{"model":"b","choices":[{"delta":{"role":"assistant"}}]}',
        '{"model":"a","choices":[{"delta":{"content":"y"}}]}',
    ]
    t = assert_same_as_parsed(datas)
    assert t.template.head is None
    assert (t.model, t.content) == ("a", "xy")
