"""The operator console's one date format: `{{ moment|utc }}` is
"2026-12-02 14:05 UTC" (`|utc:"seconds"` adds the seconds), "—" for none.
The Python side (list columns, messages) uses core.dates.when, the same
function."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def utc(moment, precision: str = "") -> str:
    from core.dates import when

    return when(moment, seconds=precision == "seconds", none="—")
