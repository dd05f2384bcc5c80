"""The chunk index (`C#`) is written after a batch's verdict is out, not on
its path; a crash between the two costs HEADs later, never a verdict or
data."""
from __future__ import annotations

import secrets
from typing import Any

import pytest

from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import new_id
from tests.harness import BatchItem, Harness, chunk_id


class Crash(Exception):
    pass


def test_the_index_is_written_after_the_wake_up(fast: Harness,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    h, dev = fast, fast.signup()
    order: list[str] = []
    wake, remember = h.rt.waker.wake_each, h.rt.meta.remember_chunks

    def woken(payloads: Any) -> Any:
        order.append("wake")
        return wake(payloads)

    def remembered(user: str, chunks: Any) -> None:
        order.append("index")
        remember(user, chunks)

    monkeypatch.setattr(h.rt.waker, "wake_each", woken)
    monkeypatch.setattr(h.rt.meta, "remember_chunks", remembered)
    c1, c2 = secrets.token_bytes(300), secrets.token_bytes(500)
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0, chunks=(c1, c2)),
                                BatchItem(new_id(), 0, chunks=(c2,))])
    assert h.commit(batch.key).status == FINISHED
    assert order == ["wake", "index"]
    assert h.rt.meta.known_chunks(dev.user_id, [chunk_id(c1), chunk_id(c2)]) == \
        {chunk_id(c1), chunk_id(c2)}


def test_a_crash_before_the_index_loses_no_verdict_and_no_chunk(
        fast: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h, dev = fast, fast.signup()
    c = secrets.token_bytes(400)
    first = h.stage_batch(dev, [BatchItem(new_id(), 0, chunks=(c,))])

    def crash(user: str, chunks: Any) -> None:
        raise Crash("after the wake-up")

    remember = h.rt.meta.remember_chunks
    monkeypatch.setattr(h.rt.meta, "remember_chunks", crash)
    with pytest.raises(Crash):
        h.commit(first.key)
    assert [e["status"] for e in h.batch(dev, first.batch_id)["entries"]] == ["accepted"]
    assert h.rt.meta.known_chunks(dev.user_id, [chunk_id(c)]) == set()
    monkeypatch.setattr(h.rt.meta, "remember_chunks", remember)
    # the event again: a duplicate, nothing to commit twice
    assert h.commit(first.key).detail == "duplicate"
    # a later version relying on the unindexed chunk: HEADed, found, accepted
    later = h.stage_batch(dev, [BatchItem(new_id(), 0, chunks=(c,))], upload_chunks=False)
    assert later.ticket["chunk_urls"]  # the index does not vouch for it: asked again
    assert h.commit(later.key).status == FINISHED
    assert [e["status"] for e in h.batch(dev, later.batch_id)["entries"]] == ["accepted"]
    assert h.rt.meta.known_chunks(dev.user_id, [chunk_id(c)]) == {chunk_id(c)}


def test_opening_a_batch_looks_up_only_the_chunks_it_does_not_pack(
        fast: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_pack_pipeline import make_pack, post_batch

    h, dev = fast, fast.signup()
    c1, c2, c3 = (secrets.token_bytes(n) for n in (300, 500, 700))
    _pid, _data, decl = make_pack([c1, c2])
    asked: list[str] = []
    known = h.rt.meta.known_chunks

    def looked_up(user: str, chunks: Any) -> set[str]:
        asked.extend(chunks)
        return known(user, chunks)

    monkeypatch.setattr(h.rt.meta, "known_chunks", looked_up)
    batch = post_batch(h, dev, [BatchItem(new_id(), 0, chunks=(c1, c2, c3))], [decl])
    assert asked == [chunk_id(c3)]
    assert set(batch.ticket["chunk_urls"]) == {chunk_id(c3)}
