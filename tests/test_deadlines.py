"""Deadlines: keys until a deadline, expired lazily (issue 17: the duplicate windows)."""

from __future__ import annotations

from lprmeta.deadlines import Deadlines


def test_keys_expire_at_their_deadline_in_order() -> None:
    d: Deadlines[str] = Deadlines()
    d.remember("a", 10.0, limit=100)
    d.remember("b", 12.0, limit=100)
    d.expire(9.9)
    assert list(d) == ["a", "b"]
    d.expire(10.0)  # a deadline that has come: gone
    assert list(d) == ["b"] and d.get("a") is None
    d.expire(11.0)
    assert list(d) == ["b"]
    d.remember("b", 20.0, limit=100)  # remembered again: a new deadline
    d.expire(15.0)
    assert d.get("b") == 20.0
    d.expire(20.0)
    assert len(d) == 0


def test_a_key_remembered_after_everything_expired_expires_too() -> None:
    """The lower bound of the earliest deadline is taken down by a new entry: an empty
    table's bound (infinity) must not hide it."""
    d: Deadlines[str] = Deadlines()
    d.remember("a", 1.0, limit=10)
    d.expire(2.0)
    assert len(d) == 0
    d.remember("b", 3.0, limit=10)
    d.expire(4.0)
    assert "b" not in d


def test_expire_looks_only_once_a_deadline_has_come() -> None:
    d: Deadlines[int] = Deadlines()
    for i in range(1000):
        d.remember(i, 100.0 + i, limit=10_000)
    d.expire(50.0)
    assert len(d) == 1000
    d.expire(149.5)
    assert len(d) == 950 and next(iter(d)) == 50


def test_past_its_limit_the_oldest_is_forgotten() -> None:
    d: Deadlines[int] = Deadlines()
    for i in range(10):
        d.remember(i, 100.0, limit=3)
    assert list(d) == [7, 8, 9]
