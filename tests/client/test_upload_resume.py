"""Upload resume (resume.py): after a pass dies half-way through a big file,
the next one sends only what never reached S3. The fake server answers like
chalicelib/api.py: it presigns every chunk no *committed* version names,
so without the journal the chunks already in S3 would all be sent again.
`make bench` measures the same with a real kill (benchmarks/resume.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sealsync_client.api import ApiError
from sealsync_client.resume import SentChunks
from sealsync_client.transfer import Transfer

from .test_transfer import FILE, RING, USER, FakeServer, MiB, sign


class CommitKnows(FakeServer):
    """Presigns every chunk not yet committed; fails the PUTs after `fail_after`.

    Its chunk lookup answers "nothing missing", so the client packs nothing
    and every chunk goes alone through `chunk_urls`: the v1 chunk path this
    journal covers (packs have their own resume: tests/client/test_packing.py)."""

    def missing_chunks(self, chunk_ids: list[str]) -> list[str]:
        return []

    def __init__(self) -> None:
        super().__init__()
        self.committed: set[str] = set()
        self.fail_after: int | None = None
        self.verdict = "accepted"
        self.put_bytes = 0

    def ticket(self, chunks: list[tuple[str, int]]) -> dict[str, Any]:
        return {"upload_id": "u", "manifest_url": "manifest",
                "chunk_urls": {c: f"chunk:{c}" for c, _ in chunks if c not in self.committed},
                "chunk_headers": {"If-None-Match": "*"}}

    def put_blob(self, url: str, blob: bytes | memoryview,
                 headers: dict[str, str] | None = None) -> None:
        if url != "manifest" and self.fail_after is not None:
            if self.fail_after <= 0:
                raise ApiError("connection reset (the pass is dying)")
            self.fail_after -= 1
        self.put_bytes += len(blob)  # sent, even when S3 then answers 412
        super().put_blob(url, blob, headers)

    def wait_batch(self, batch_id: str) -> dict[str, Any]:
        missing = [c["id"] for e in self.entries for c in e["chunks"]
                   if c["id"] not in self.chunks]
        status = "rejected" if missing else self.verdict
        if status == "accepted":
            self.committed.update(c["id"] for e in self.entries for c in e["chunks"])
        return {"batch_id": batch_id, "status": "finished",
                "entries": [{"file_id": e["file_id"], "status": status,
                             "revision": e["base_revision"] + 1} for e in self.entries]}


def transfer(server: CommitKnows, journal: Path | None) -> Transfer:
    t = Transfer(server, RING, USER, "test", workers=1, sign=sign)  # type: ignore[arg-type]
    t.sent = SentChunks(journal) if journal else None
    return t


def dies_then_resumes(tmp_path: Path, journal: Path | None) -> tuple[int, int, int]:
    """(bytes sent by the dying pass, by the next one, sealed size of the file)."""
    (tmp_path / "big.bin").write_bytes(os.urandom(8 * MiB))
    server = CommitKnows()
    server.fail_after = 12
    with pytest.raises(ApiError):
        transfer(server, journal).upload(tmp_path, "big.bin", FILE, 0)
    first = server.put_bytes
    server.fail_after, server.put_bytes = None, 0
    assert transfer(server, journal).upload(tmp_path, "big.bin", FILE, 0)["status"] \
        == "accepted"
    stored = sum(len(v) for v in server.chunks.values())
    return first, server.put_bytes - len(server.manifests[-1]), stored


def test_a_resumed_upload_sends_only_the_chunks_that_never_arrived(tmp_path: Path) -> None:
    journal = tmp_path / "sent-chunks"
    first, second, stored = dies_then_resumes(tmp_path, journal)
    assert first > 0 and first + second == stored  # not one chunk byte twice
    assert not journal.exists()  # committed: the server knows them all now


def test_without_the_journal_the_same_death_resends_what_s3_has(tmp_path: Path) -> None:
    first, second, stored = dies_then_resumes(tmp_path, None)
    assert second == stored and first + second > stored  # the check above can fail


def test_a_decided_batch_leaves_the_journal_even_when_it_lost(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * MiB))
    server = CommitKnows()
    server.verdict = "conflict"
    journal = tmp_path / "sent-chunks"
    transfer(server, journal).upload(tmp_path, "big.bin", FILE, 0)
    assert not journal.exists() and len(SentChunks(journal)) == 0


def test_a_chunk_the_journal_claims_but_s3_lacks_is_rejected_then_sent(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * MiB))
    server = CommitKnows()
    journal = tmp_path / "sent-chunks"
    spans = transfer(server, journal).prepare(tmp_path, "big.bin", FILE, 0).spans
    SentChunks(journal).add(spans[0].id)  # e.g. the server lost it since
    lied = transfer(server, journal).upload(tmp_path, "big.bin", FILE, 0)
    assert lied["status"] == "rejected"  # never accepted on a chunk's say-so
    assert not journal.exists()
    assert transfer(server, journal).upload(tmp_path, "big.bin", FILE, 0)["status"] \
        == "accepted"


def test_the_journal_survives_reopening_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "sent-chunks"
    a, b = "a" * 64, "b" * 64
    sent = SentChunks(path)
    sent.add(a)
    sent.add(a)
    sent.add("not an id")
    with path.open("a") as f:
        f.write(b[:20])  # killed mid-write
    again = SentChunks(path)
    assert a in again and b not in again and len(again) == 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again.settled([a])
    assert not path.exists()
