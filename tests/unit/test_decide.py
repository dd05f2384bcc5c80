"""The decision table of the pure core, row by row, plus a property check."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.decide import (
    ACCEPTED,
    CONFLICT,
    PENDING,
    REJECTED,
    Accept,
    Conflict,
    Proposal,
    Reject,
    Skip,
    decide,
)


def proposal(**kw: object) -> Proposal:
    base = {"status": PENDING, "base_revision": 3, "declared_size": 10,
            "actual_size": 10, "missing_chunks": 0, "tombstone": False}
    return Proposal(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("head", "deleted", "kw", "expected"),
    [
        (3, False, {}, Accept(4)),
        (0, False, {"base_revision": 0}, Accept(1)),
        (5, False, {}, Conflict(5)),
        (4, False, {"base_revision": 0}, Conflict(4)),
        (2, False, {}, Reject("base revision 3 is ahead of the head (2)")),
        (3, True, {}, Accept(4)),  # writing over a tombstone revives the file
        (3, False, {"tombstone": True}, Accept(4)),
        (3, True, {"tombstone": True}, Reject("the file does not exist or is already deleted")),
        (0, False, {"base_revision": 0, "tombstone": True},
         Reject("the file does not exist or is already deleted")),
        (3, False, {"actual_size": 11}, Reject("manifest is 11 bytes but 10 were declared")),
        (3, False, {"actual_size": 9}, Reject("manifest is 9 bytes but 10 were declared")),
        (3, False, {"missing_chunks": 2}, Reject("2 referenced chunk(s) were never uploaded")),
        (3, False, {"actual_size": None}, Skip("staging object is absent")),
        (3, False, {"status": ACCEPTED}, Skip("upload already accepted")),
        (9, False, {"status": CONFLICT}, Skip("upload already conflict")),
        (3, False, {"status": REJECTED, "actual_size": 99}, Skip("upload already rejected")),
    ],
)
def test_decision_table(head: int, deleted: bool, kw: dict[str, object],
                        expected: object) -> None:
    assert decide(head, deleted, proposal(**kw)) == expected


def test_bad_size_beats_conflict() -> None:
    """A malformed upload is rejected, not reported as a conflict it could
    later 'resolve' with a conflict copy."""
    assert isinstance(decide(9, False, proposal(actual_size=1)), Reject)


@given(head=st.integers(0, 50), base=st.integers(0, 50), deleted=st.booleans(),
       tomb=st.booleans())
def test_only_the_head_base_is_ever_accepted(head: int, base: int, deleted: bool,
                                             tomb: bool) -> None:
    d = decide(head, deleted, proposal(base_revision=base, tombstone=tomb))
    if isinstance(d, Accept):
        assert base == head and d.revision == head + 1
    if isinstance(d, Conflict):
        assert base < head and d.winner_revision == head
