"""The dashboard's one date format, in the viewer's zone (analytics.dashboard
activates it): "2026-12-02 15:05:07 CET". `{% load dashboard_time %}`, then
`{{ moment|local_when }}` (or `|local_when:"minutes"` without the seconds)."""

from __future__ import annotations

from django import template

from analytics.dashboard import local_when as _local_when

register = template.Library()


@register.filter
def local_when(moment, precision: str = "seconds") -> str:
    return _local_when(moment, seconds=precision != "minutes")
