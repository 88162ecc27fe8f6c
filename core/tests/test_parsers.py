"""The bounded JSON loader and DRF parser (core/parsers.py) on their own."""

import io

import pytest
from rest_framework.exceptions import ParseError

from core.errors import ApplicationError
from core.parsers import BoundedJSONParser, JsonLimitExceeded, json_depth, json_loads_bounded

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize(
    "text, depth",
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "]]]]"]', 1),  # brackets inside strings are text
        (r'["\"[[[[", {"k\\": "{{"}]', 2),  # escaped quotes and backslashes
        ("[" * 100_000 + "]" * 100_000, 100_000),
    ],
)
def test_depth_is_counted_outside_strings_without_recursion(text, depth):
    assert json_depth(text) == depth


def test_a_document_within_the_limits_parses_as_json_loads_would():
    assert json_loads_bounded('{"a": [1, "x"], "b": {"c": null}}', max_depth=3, max_keys=3) == {
        "a": [1, "x"],
        "b": {"c": None},
    }


@pytest.mark.parametrize(
    "text, limit",
    [
        ("[" * 5 + "]" * 5, "depth"),
        ('{"a": 1, "b": {"c": 2, "d": 3}}', "keys"),
        ('{"k": ["' + "x" * 11 + '"]}', "string_length"),
        ('{"' + "k" * 11 + '": 1}', "string_length"),
    ],
)
def test_each_limit_is_refused_by_name(text, limit):
    with pytest.raises(JsonLimitExceeded) as refused:
        json_loads_bounded(text, max_depth=4, max_keys=3, max_string_length=10)
    assert refused.value.limit == limit


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "{", "\udcff", '{"a": 1} x'])
def test_what_is_not_strict_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        json_loads_bounded(text, max_depth=4)


def parse(body: bytes, settings, **limits):
    for name, value in limits.items():
        setattr(settings, name, value)
    return BoundedJSONParser().parse(io.BytesIO(body), "application/json", {})


def test_the_drf_parser_reads_no_more_than_the_size_limit(settings):
    with pytest.raises(ApplicationError) as refused:
        parse(b'{"a": "' + b"x" * 2000 + b'"}', settings, API_MAX_BODY_BYTES=1000)
    assert (refused.value.code, refused.value.status) == ("request_too_large", 413)


def test_the_drf_parser_refuses_depth_with_the_limit_named(settings):
    with pytest.raises(ApplicationError) as refused:
        parse(b"[" * 50_000 + b"]" * 50_000, settings, API_MAX_BODY_BYTES=1_000_000)
    assert refused.value.code == "invalid_request"
    assert refused.value.details == {"limit": "json_depth", "max": 32, "setting": "API_MAX_JSON_DEPTH"}


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[NaN]"])
def test_the_drf_parser_says_not_json_without_echoing_the_body(settings, body):
    with pytest.raises(ParseError) as refused:
        parse(body, settings)
    assert "NaN" not in str(refused.value.detail)
