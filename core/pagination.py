"""One way to page a list, for every list endpoint: `limit` and an opaque cursor.

A request names `limit` (1 to MAX_LIMIT, default DEFAULT_LIMIT) and, for any
page after the first, `cursor`: the `next_cursor` of the page before. An
answer is at most `limit` items and its `next_cursor` (null on the last page).
So an answer is bounded by its page, never by how much data there is
(DESIGN.md invariant 12).

Pages are keyset pages: a cursor names the position after which the next page
starts (the last item's ordering key), never an offset, so a page costs the
same wherever it lies, and items added or removed between two requests shift
nothing. A cursor is the base64url (unpadded) of a JSON array: the kind of
list it pages, then the position. Clients must treat it as opaque; a cursor
that is not one this list handed out is 400 `invalid_request`.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db.models import Q, QuerySet
from rest_framework import serializers

from core.errors import ApplicationError
from core.parsers import json_loads_bounded
from core.serializers import QueryParamsSerializer

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Far above any cursor this server hands out; a longer one is refused unread.
MAX_CURSOR_LENGTH = 1024


class InvalidCursor(ApplicationError):
    code = "invalid_request"

    def __init__(self) -> None:
        super().__init__(
            "The request is not valid.",
            details={"fields": {"cursor": ["Not a cursor this list handed out."]}},
        )


class PageQuerySerializer(QueryParamsSerializer):
    """The query parameters every list endpoint takes; an endpoint's own
    query serializer extends it."""

    limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LIMIT,
        default=DEFAULT_LIMIT,
        help_text=f"Items per page, 1 to {MAX_LIMIT}.",
    )
    cursor = serializers.CharField(
        required=False,
        max_length=MAX_CURSOR_LENGTH,
        # The alphabet of base64url: anything else is no cursor of ours.
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$", "Not a cursor this list handed out.")],
        help_text="The `next_cursor` of the previous page; absent for the first page.",
    )


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()  # to the microsecond: a keyset needs the exact key
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def cursor_encode(kind: str, position: Sequence[Any]) -> str:
    raw = json.dumps([kind, *(_plain(value) for value in position)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def cursor_decode(cursor: str, kind: str, *, size: int) -> list[Any]:
    """The position a cursor of this kind names (`size` values). Raises
    InvalidCursor for anything else: garbage, another list's cursor, a cursor
    of another shape."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # A cursor is one flat list; a deeply nested one would recurse (a 500).
        decoded = json_loads_bounded(raw, max_depth=1)
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    if not isinstance(decoded, list) or len(decoded) != size + 1 or decoded[0] != kind:
        raise InvalidCursor()
    position = decoded[1:]
    if not all(isinstance(value, str | int) and not isinstance(value, bool) for value in position):
        raise InvalidCursor()
    return position


def queryset_page(
    queryset: QuerySet, *, kind: str, order: Sequence[str], cursor: str | None, limit: int
) -> Page:
    """One keyset page of `queryset` in `order` (field names, "-" for
    descending; the last must be unique, e.g. the primary key): LIMIT
    `limit` + 1 rows, the extra one saying whether there is a next page."""
    fields = [name.lstrip("-") for name in order]
    if cursor is not None:
        position = cursor_decode(cursor, kind, size=len(fields))
        try:
            values = [
                queryset.model._meta.get_field(name).to_python(value)
                for name, value in zip(fields, position, strict=True)
            ]
            # Times in UTC, as stored: one at the edge of the calendar with an
            # offset has no UTC (SQLite's adapter would fail on it, a 500).
            values = [value.astimezone(UTC) if isinstance(value, datetime) else value for value in values]
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise InvalidCursor() from None
        if any(value is None for value in values):
            raise InvalidCursor()
        # After the position: (a, b) > (x, y) is a > x, or a = x and b > y.
        # The bound on the first field alone comes first and plain, so that
        # an index on the ordering starts its scan at the position rather
        # than at the top of the list.
        first = "lte" if order[0].startswith("-") else "gte"
        queryset = queryset.filter(**{f"{fields[0]}__{first}": values[0]})
        after = Q()
        for index, name in enumerate(order):
            lookup = "lt" if name.startswith("-") else "gt"
            step = Q(**{f"{fields[index]}__{lookup}": values[index]})
            for earlier in range(index):
                step &= Q(**{fields[earlier]: values[earlier]})
            after |= step
        queryset = queryset.filter(after)
    rows = list(queryset.order_by(*order)[: limit + 1])
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    rows = rows[:limit]
    last = rows[-1]
    attnames = [queryset.model._meta.get_field(name).attname for name in fields]
    return Page(items=rows, next_cursor=cursor_encode(kind, [getattr(last, name) for name in attnames]))
