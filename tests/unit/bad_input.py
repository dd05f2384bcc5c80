"""Shared by the bad-input tests (test_bad_*.py): a world of two users, each
with one committed file, and checks that nothing in it changed."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.core.ids import new_id
from chalicelib.core.requests import Limits
from tests.harness import Device, Harness

LIMITS = Limits()
MAX_INT = 2**53


@dataclass
class World:
    """Two users, each with one committed file, and what they look like."""

    h: Harness
    a: Device
    b: Device
    a_file: str
    b_file: str
    a_upload: str
    b_upload: str
    snapshot: dict[str, Any]

    def state(self) -> dict[str, Any]:
        scan = self.h.rt.dynamodb.scan(
            TableName=self.h.rt.settings.table, ProjectionExpression="pk",
            FilterExpression="begins_with(pk, :up)",
            ExpressionAttributeValues={":up": {"S": "UP#"}})
        return {
            "a_head": stable(self.h.head(self.a, self.a_file)),
            "b_head": stable(self.h.head(self.b, self.b_file)),
            "a_feed": self.h.changes(self.a)["changes"],
            "b_feed": self.h.changes(self.b)["changes"],
            "uploads": scan["Count"],
        }

    def assert_unchanged(self) -> None:
        """Nothing at all happened: no head, feed or upload record changed."""
        assert self.state() == self.snapshot

    def assert_heads_unchanged(self) -> None:
        """Uploads may have been recorded (and rejected), but no head or feed moved."""
        assert {**self.state(), "uploads": 0} == {**self.snapshot, "uploads": 0}


def stable(head: dict[str, Any] | None) -> dict[str, Any] | None:
    """A head without its presigned URLs (they carry a fresh signature)."""
    if head is None:
        return None
    return {k: v for k, v in head.items() if k not in ("manifest_url", "chunks")} | {
        "chunks": [c["id"] for c in head.get("chunks", [])]}


def make_world(fast: Harness) -> World:
    a, b = fast.signup(), fast.signup()
    a_file, b_file = new_id(), new_id()
    a_up = fast.stage(a, a_file, 0, b"a manifest", (b"a chunk",))
    assert fast.commit(a_up.key).single.status == "accepted"
    b_up = fast.stage(b, b_file, 0, b"b manifest", (b"b chunk",))
    assert fast.commit(b_up.key).single.status == "accepted"
    w = World(fast, a, b, a_file, b_file, a_up.upload_id, b_up.upload_id, {})
    w.snapshot = w.state()
    return w


def expect(r: Any, status: int, error: str, *words: str) -> None:
    assert r.status_code == status, r.body
    body = json.loads(r.body)
    assert body["error"] == error, body
    for word in words:
        assert word in body["message"], (word, body["message"])


def upload(file_id: str, /, **change: Any) -> dict[str, Any]:
    """A good POST /v1/uploads body for a file at revision 1, then `change`."""
    body = {"file_id": file_id, "base_revision": 1, "manifest_size": 8,
            "chunks": [{"id": "c" * 64, "size": 5}]}
    return {**body, **change}


def each(cases: list[tuple[Any, ...]], check: Callable[..., None]) -> None:
    """Run `check` on every case against one world; report every failure."""
    failures = []
    for case in cases:
        try:
            check(*case)
        except AssertionError as exc:
            failures.append(f"{repr(case)[:120]}: {exc}")
    assert not failures, "\n".join(failures)

