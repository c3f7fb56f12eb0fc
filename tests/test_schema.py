"""``rill.schema``: the three ways to give a schema, ``--schema-multi``, and the answer's check;
and the fake server's instance generator the end-to-end tests rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rill.errors import ExitCode, SchemaMismatch, UsageError
from rill.fake.structured import broken, instance
from rill.schema import Schema, concise, parse_schema, wrap_multi
from rill.stream.protocol import Request, build_payload


def test_concise_form_types_descriptions_and_strictness() -> None:
    schema = concise("name, age int, score float, ok bool, bio: a description")
    assert schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "bio": {"type": "string", "description": "a description"},
        },
        "required": ["name", "age", "score", "ok", "bio"],
        "additionalProperties": False,
    }


def test_concise_form_spellings_and_typed_descriptions() -> None:
    schema = concise("  n  integer : how many ,flag boolean,x STR")
    assert schema["properties"] == {
        "n": {"type": "integer", "description": "how many"},
        "flag": {"type": "boolean"},
        "x": {"type": "string"},
    }


def test_concise_form_on_lines_lets_descriptions_hold_commas() -> None:
    schema = concise("title: short, punchy\n\nyear int: of release, as a number\n")
    assert schema["properties"] == {
        "title": {"type": "string", "description": "short, punchy"},
        "year": {"type": "integer", "description": "of release, as a number"},
    }
    assert schema["required"] == ["title", "year"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("name, age integ", "unknown type 'integ'"),
        ("first name", "unknown type 'name'"),
        ("a,,b", "empty field"),
        ("a, a int", "given twice"),
        ("9lives", "NAME [TYPE]"),
        ("a b c", "NAME [TYPE]"),
        ("", "empty field"),
        ("\n\n", "no fields"),
    ],
)
def test_bad_concise_forms_are_usage_errors(spec: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_schema(spec)
    assert words in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


def test_inline_json_and_a_table_are_taken_as_they_are() -> None:
    raw = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    assert parse_schema(json.dumps(raw)).schema == raw
    assert parse_schema(f"  {json.dumps(raw)}").schema == raw
    assert parse_schema(raw).schema == raw
    assert parse_schema(raw).name == "answer"
    titled = parse_schema({**raw, "title": "Person_1"})
    assert titled.name == "Person_1"
    assert parse_schema({**raw, "title": "not a name!"}).name == "answer"


def test_schema_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "person.json"
    path.write_text('{"type": "object", "properties": {"a": {"type": "string"}}}')
    assert parse_schema(f"@{path}").schema["properties"] == {"a": {"type": "string"}}
    with pytest.raises(UsageError, match="cannot read the schema file"):
        parse_schema(f"@{tmp_path / 'missing.json'}")
    path.write_text("name, age int")  # a file holds JSON, not the concise form
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_schema(f"@{path}")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        parse_schema(f"@{path}")
    with pytest.raises(UsageError, match="file name after @"):
        parse_schema("@")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ('{"type": ', "not valid JSON"),
        ("[1, 2]", None),  # not an object: read as the concise form, which refuses it
        ('{"type": "objekt"}', "not a valid JSON Schema"),
        ('{"type": "object", "properties": 3}', "at $.properties"),
        ('{"minimum": NaN}', "NaN"),
    ],
)
def test_invalid_schemas_are_usage_errors(spec: str, words: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        parse_schema(spec)
    if words:
        assert words in caught.value.message


def test_multi_wraps_the_schema_as_a_required_list_of_items() -> None:
    multi = parse_schema("name, age int", multi=True)
    assert multi.name == "items"
    assert multi.schema == wrap_multi(concise("name, age int"))
    assert multi.schema["required"] == ["items"]
    assert multi.schema["properties"]["items"]["type"] == "array"
    assert multi.check('{"items": [{"name": "a", "age": 1}]}') == {
        "items": [{"name": "a", "age": 1}]
    }
    with pytest.raises(SchemaMismatch, match=r"\$\.items\[1\]\.age"):
        multi.check('{"items": [{"name": "a", "age": 1}, {"name": "b", "age": "x"}]}')


def test_response_format_is_strict_json_schema_and_wins_over_options() -> None:
    schema = parse_schema("name")
    fmt = schema.response_format()
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": schema.schema},
    }
    request = Request(
        messages=[{"role": "user", "content": "hi"}],
        extra={"response_format": {"type": "json_object"}},
        schema=schema,
    )
    assert build_payload(request, openrouter=True)["response_format"] == fmt
    assert request.options()["response_format"] == fmt  # history records what was asked
    assert "response_format" not in build_payload(Request(messages=[]), openrouter=True)


@pytest.mark.parametrize(
    ("answer", "words", "path"),
    [
        ('{"name": "a", "age": "x"}', "at $.age: 'x' is not of type 'integer'", "$.age"),
        ('{"name": "a"}', "at $: 'age' is a required property", "$"),
        ('{"name": "a", "age": 1, "z": 0}', "'z' was unexpected", "$"),
        ("[]", "is not of type 'object'", "$"),
        ("Sure! Here it is", "not JSON (Expecting value at line 1 column 1)", None),
        ("", "not JSON (it is empty)", None),
        ('{"name": "a", "age": 1', "not JSON", None),
        ("[" * 100_000 + "]" * 100_000, "nested too deep", None),
    ],
)
def test_check_names_the_first_failing_path(answer: str, words: str, path: str | None) -> None:
    schema = parse_schema("name, age int")
    with pytest.raises(SchemaMismatch) as caught:
        schema.check(answer)
    assert words in caught.value.message
    assert caught.value.path == path
    assert caught.value.exit_code == ExitCode.SCHEMA == 9
    assert "\n" not in caught.value.message


def test_check_returns_the_parsed_answer_and_cuts_long_reasons() -> None:
    schema = parse_schema("name, age int")
    assert schema.check(' {"name": "a", "age": 3}\n') == {"name": "a", "age": 3}
    long = parse_schema('{"type": "array"}')
    with pytest.raises(SchemaMismatch) as caught:
        long.check(json.dumps({"x": "y" * 10_000}))
    assert len(caught.value.message) < 400


_FIELD_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_TYPES = st.sampled_from(["", " str", " int", " float", " bool"])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_FIELD_NAMES, _TYPES, min_size=1, max_size=6), st.booleans())
def test_the_fake_servers_instances_match_and_broken_ones_do_not(
    fields: dict[str, str], multi: bool
) -> None:
    spec = ", ".join(name + kind for name, kind in fields.items())
    schema: Schema = parse_schema(spec, multi=multi)
    value = instance(schema.schema)
    assert schema.check(json.dumps(value)) == value
    with pytest.raises(SchemaMismatch):
        schema.check(json.dumps(broken(value)))
