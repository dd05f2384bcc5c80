"""The retention rule, pure (chalicelib/core/retention.py): which revisions
expire, what leaves the chunk index, what the TOTAL loses."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import metering
from chalicelib.core import retention as core
from chalicelib.core.retention import DAY, Revision

W = 30 * DAY


def revs(*committed: int, expired: tuple[int, ...] = ()) -> list[Revision]:
    return [Revision(i + 1, t, 100 * (i + 1), expired=i + 1 in expired)
            for i, t in enumerate(committed)]


def test_the_head_never_expires_however_old() -> None:
    assert core.expiring(revs(0), W, 10**9) == []
    assert [r.revision for r in core.expiring(revs(0, 10), W, 10**9)] == [1]


def test_a_revision_expires_a_window_after_the_one_that_superseded_it() -> None:
    history = revs(0, 5 * DAY, 40 * DAY)  # r1 superseded at day 5, r2 at day 40
    assert core.expiring(history, W, 35 * DAY) == []  # exactly the window: not MORE
    assert [r.revision for r in core.expiring(history, W, 35 * DAY + 1)] == [1]
    assert [r.revision for r in core.expiring(history, W, 70 * DAY + 1)] == [1, 2]


def test_a_deleted_file_keeps_its_tombstone_and_a_recreated_one_lets_it_go() -> None:
    deleted = revs(0, 10 * DAY)  # r2 is the tombstone head
    assert [r.revision for r in core.expiring(deleted, W, 41 * DAY)] == [1]
    recreated = revs(0, 10 * DAY, 20 * DAY)  # r3 re-creates the file on the same id
    assert [r.revision for r in core.expiring(recreated, W, 51 * DAY)] == [1, 2]


def test_expired_revisions_are_not_expired_twice_and_order_does_not_matter() -> None:
    history = list(reversed(revs(0, DAY, 2 * DAY, expired=(1,))))
    assert [r.revision for r in core.expiring(history, W, 100 * DAY)] == [2]


def test_zero_days_keeps_everything_forever() -> None:
    assert core.window_s(0) is None
    assert core.expiring(revs(0, 1, 2), core.window_s(0), 10**12) == []
    assert core.window_s(30) == W
    with pytest.raises(ValueError):
        core.window_s(-1)


def test_expires_at_is_the_first_second_the_rule_expires_it() -> None:
    history = revs(0, 5 * DAY)
    at = core.expires_at(history[1].committed, W)
    assert at is not None
    assert core.expiring(history, W, at - 1) == []
    assert core.expiring(history, W, at) == [history[0]]
    assert core.expires_at(None, W) is None and core.expires_at(5, None) is None


def test_only_chunks_no_retained_revision_names_leave_the_index() -> None:
    assert core.unindexed([("a", "b"), ("c",)], [("b",), ("d",)]) == {"a", "c"}


def test_what_expiry_takes_off_is_what_the_commit_added() -> None:
    history = revs(0, 1, 2)
    freed = core.freed(history[:2])
    added = metering.commit_delta(7, [r.size for r in history])
    taken = metering.expiry_delta(9, [r.size for r in history[:2]])
    assert (freed.bytes, freed.versions) == (300, 2) == (-taken.bytes_delta, -taken.versions)
    assert added.bytes_delta + taken.bytes_delta == history[2].size


@given(st.lists(st.integers(0, 400), min_size=1, max_size=12),
       st.integers(1, 60), st.integers(0, 500))
def test_the_rule_matches_its_definition(gaps: list[int], days: int, now_day: int) -> None:
    """Revision r expires iff r is not the head and r+1 was committed more
    than the window before now; never the head; never twice."""
    committed, t = [], 0
    for g in gaps:
        t += g * 3600
        committed.append(t)
    history = revs(*committed)
    window, now = days * DAY, now_day * DAY
    got = {r.revision for r in core.expiring(history, window, now)}
    want = {r for r in range(1, len(history)) if now - committed[r] > window}
    assert got == want
    assert len(history) not in got
    again = [Revision(r.revision, r.committed, r.size, expired=r.revision in got)
             for r in history]
    assert core.expiring(again, window, now) == []


def test_the_quota_messages_say_how_deleting_frees_space() -> None:
    from chalicelib.core import emails, quota

    with pytest.raises(quota.OverQuota) as full:
        quota.check(10, 10, [quota.Adding(0, 10, 1, 20)], retention_days=30)
    assert "free their space 30 days after the delete" in full.value.message
    with pytest.raises(quota.OverQuota) as forever:
        quota.check(10, 10, [quota.Adding(0, 10, 1, 20)], retention_days=0)
    assert "keeps every version" in forever.value.message
    mail = emails.usage_warning(100, 10, 10, retention_days=7)
    assert "7 days after the delete" in mail.body
    assert "7 days" not in emails.usage_warning(80, 8, 10, retention_days=7).body
