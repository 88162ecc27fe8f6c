"""JSON a hostile client cannot turn into a 500: bounded size, depth, keys and strings.

Python's json module parses nested arrays and objects by recursion, so a body
of 100,000 `[` ends in RecursionError (a 500 and a long traceback) before any
serializer sees it, and a body of many small keys costs memory and CPU out of
proportion to its size. Every limit is checked before or while parsing,
cheaply, without recursion:

- size (`API_MAX_BODY_BYTES`): at most that many bytes are read; more is 413
  `request_too_large`, whatever Content-Length claimed;
- nesting depth (`API_MAX_JSON_DEPTH`): a scan of the brackets outside string
  literals, before `json.loads` runs;
- keys (`API_MAX_JSON_KEYS`, over the whole document): counted by
  `object_pairs_hook`, which stops the parse at the first key too many;
- string length (`API_MAX_STRING_LENGTH`, keys and values, in characters).

Beyond a limit the answer is 400 `invalid_request` (413 for size) in the
error shape, naming the limit in `details`, never echoing the input.
`json_loads_bounded` is the same parse for JSON that does not come as a
request body (a pagination cursor).
"""

from __future__ import annotations

import codecs
import json
import re
from itertools import accumulate
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.errors import ApplicationError

# A JSON string literal, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonLimitExceeded(ValueError):
    """The document passes one of the limits; `limit` names which, `maximum` its value."""

    def __init__(self, limit: str, maximum: int) -> None:
        super().__init__(f"JSON {limit} above {maximum}")
        self.limit = limit
        self.maximum = maximum


class RequestTooLarge(ApplicationError):
    code = "request_too_large"


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, brackets inside
    strings not counted; computed without recursion (and in C, mostly)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub('""', text))
    if not brackets:
        return 0
    return max(0, *accumulate(map(_STEP.__getitem__, brackets)))


def json_loads_bounded(
    text: str | bytes,
    *,
    max_depth: int,
    max_keys: int | None = None,
    max_string_length: int | None = None,
) -> Any:
    """`json.loads` within limits; raises JsonLimitExceeded (a ValueError) or
    ValueError for what is not JSON (NaN and Infinity included, as DRF's
    strict JSON)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if json_depth(text) > max_depth:
        raise JsonLimitExceeded("depth", max_depth)
    keys = 0

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal keys
        keys += len(items)
        if max_keys is not None and keys > max_keys:
            raise JsonLimitExceeded("keys", max_keys)
        if max_string_length is not None:
            for key, _ in items:
                if len(key) > max_string_length:
                    raise JsonLimitExceeded("string_length", max_string_length)
        return dict(items)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constant)
    except RecursionError:  # the scan above makes this unreachable; kept as a floor
        raise JsonLimitExceeded("depth", max_depth) from None
    if max_string_length is not None:
        _check_strings(value, max_string_length)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_strings(value: Any, maximum: int) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if len(item) > maximum:
                raise JsonLimitExceeded("string_length", maximum)
        elif isinstance(item, dict):
            pending.extend(item.values())  # keys were checked while parsing
        elif isinstance(item, list):
            pending.extend(item)


_LIMIT_SETTINGS = {
    "depth": "API_MAX_JSON_DEPTH",
    "keys": "API_MAX_JSON_KEYS",
    "string_length": "API_MAX_STRING_LENGTH",
}


def json_limit_error(exc: JsonLimitExceeded) -> tuple[str, dict[str, Any]]:
    """The message and details of the 400 for a limit passed."""
    return (
        f"The JSON body passes a limit: {exc.limit.replace('_', ' ')} at most {exc.maximum}.",
        {"limit": f"json_{exc.limit}", "max": exc.maximum, "setting": _LIMIT_SETTINGS[exc.limit]},
    )


def read_bounded(stream, *, max_bytes: int, content_length: int | None) -> bytes:
    """At most `max_bytes` of `stream`; more (or a Content-Length that says
    more) is RequestTooLarge."""
    if content_length is not None and content_length > max_bytes:
        raise_too_large(max_bytes)
    body = stream.read(max_bytes + 1) if stream is not None else b""
    if len(body) > max_bytes:
        raise_too_large(max_bytes)
    return body


def raise_too_large(max_bytes: int):
    raise RequestTooLarge(
        f"The request body is larger than {max_bytes} bytes.",
        details={"limit": "body_bytes", "max": max_bytes},
    )


_UNPARSED = object()


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser within the API_MAX_* limits (REST_FRAMEWORK's
    DEFAULT_PARSER_CLASSES)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        request = parser_context.get("request")
        # What the body-limits middleware parsed already (as UTF-8, within the
        # same limits): the same body is not parsed twice.
        parsed = getattr(getattr(request, "_request", None), "coditect_json", _UNPARSED)
        if parsed is not _UNPARSED and codecs.lookup(encoding).name == "utf-8":
            return parsed
        content_length = None
        if request is not None:
            try:
                content_length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                content_length = None
        body = read_bounded(stream, max_bytes=settings.API_MAX_BODY_BYTES, content_length=content_length)
        try:
            text = codecs.decode(body, encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError("The request body is not valid UTF-8.") from exc
        try:
            return json_loads_bounded(
                text,
                max_depth=settings.API_MAX_JSON_DEPTH,
                max_keys=settings.API_MAX_JSON_KEYS,
                max_string_length=settings.API_MAX_STRING_LENGTH,
            )
        except JsonLimitExceeded as exc:
            message, details = json_limit_error(exc)
            raise ApplicationError(message, details=details) from None
        except ValueError as exc:
            # Not the parser's message: it quotes positions, and nothing of the input is echoed.
            raise ParseError("The request body is not valid JSON.") from exc
