"""The per-process cache of the hot paths: fresh for its age, then reloaded;
stale, within its limit, only while the store does not answer."""

from __future__ import annotations

import pytest

from core.cache import ProcessCache


class StoreDown(Exception):
    pass


def test_a_value_is_kept_for_its_age_and_then_reloaded(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("core.cache.time.monotonic", lambda: clock[0])
    cache = ProcessCache(lambda: 5)
    loads = []
    assert cache.get("k", lambda: loads.append(1) or "a") == "a"
    clock[0] += 4
    assert cache.get("k", lambda: "b") == "a"
    clock[0] += 2
    assert cache.get("k", lambda: "b") == "b"
    assert loads == [1]


def test_a_store_that_does_not_answer_gets_the_last_value_within_the_limit_and_is_asked_once_a_period(
    monkeypatch,
):
    clock = [100.0]
    monkeypatch.setattr("core.cache.time.monotonic", lambda: clock[0])
    cache = ProcessCache(lambda: 5, stale_on=(StoreDown,), stale_limit=lambda: 60)
    cache.get("k", lambda: "a")
    asked = []

    def down():
        asked.append(clock[0])
        raise StoreDown

    clock[0] += 6
    assert cache.get("k", down) == "a"
    assert cache.get("k", down) == "a"  # kept another period: not asked again
    clock[0] += 6
    assert cache.get("k", down) == "a"
    assert asked == [106.0, 112.0]
    clock[0] += 60  # past the limit since the last real load
    with pytest.raises(StoreDown):
        cache.get("k", down)


def test_other_errors_and_unknown_keys_are_not_served_stale():
    cache = ProcessCache(lambda: 0.0, stale_on=(StoreDown,), stale_limit=lambda: 60)
    with pytest.raises(StoreDown):
        cache.get("never-loaded", lambda: (_ for _ in ()).throw(StoreDown()))
    cache = ProcessCache(lambda: 5, stale_on=(StoreDown,), stale_limit=lambda: 60)
    cache.get("k", lambda: "a")
    cache.forget("k")
    with pytest.raises(ValueError):
        cache.get("k", lambda: (_ for _ in ()).throw(ValueError()))


def test_a_value_put_is_kept_as_if_loaded_and_not_at_all_with_caching_off(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("core.cache.time.monotonic", lambda: clock[0])
    cache = ProcessCache(lambda: 5)
    cache.put("k", "found elsewhere")
    assert cache.get("k", lambda: "loaded") == "found elsewhere"
    clock[0] += 6
    assert cache.get("k", lambda: "loaded") == "loaded"
    off = ProcessCache(lambda: 0)
    off.put("k", "found elsewhere")
    assert off.get("k", lambda: "loaded") == "loaded"
