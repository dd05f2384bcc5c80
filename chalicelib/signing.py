"""The commit's signature check: the one place that reads what it needs
(the device's key, the staged bytes) for `core.signatures` to decide.

Called once per batch run (and once per single upload), before any
decision is written: an entry it finds a problem with is rejected with
that reason, the others go on.
"""
from __future__ import annotations

from .config import Runtime
from .core.batch import BatchRecord
from .core.records import UploadRecord
from .core.signatures import (
    SIG_LEN,
    Signed,
    entry_problems,
    read_bundle,
    trailer_signatures,
)


def batch_problems(rt: Runtime, key: str, rec: BatchRecord,
                   etag: str | None = None) -> dict[int, str]:
    """Per open entry of a batch, why it must be rejected (if it must). The
    bundle is read once (only the object of `etag`, the one whose size was
    checked): its manifests hashed, its signature trailer kept."""
    only = rec.open_entries()
    if not only:
        return {}
    user_id = rec.user_id
    entries = [Signed(e.file_id, e.base_revision, e.tombstone, e.manifest_size, e.chunk_ids)
               for e in rec.entries]
    device = rt.devices.get(user_id, rec.device_id)
    if device is None or not device.can_write:  # no need to read a byte
        return entry_problems(user_id, device, entries, [], [], only)
    digests, tail = read_bundle(rt.blobs.stream(key, if_match=etag),
                                [e.manifest_size for e in entries],
                                SIG_LEN * len(entries))
    return entry_problems(user_id, device, entries, trailer_signatures(tail, len(entries)),
                          digests, only)


def upload_problem(rt: Runtime, key: str, rec: UploadRecord,
                   etag: str | None = None) -> str | None:
    """Why a single upload must be rejected, if it must (reading only the
    staged object of `etag`)."""
    entry = Signed(rec.file_id, rec.base_revision, rec.tombstone, rec.manifest_size,
                   rec.chunk_ids)
    device = rt.devices.get(rec.user_id, rec.device_id)
    digests: list[bytes] = []
    if device is not None and device.can_write and rec.signature is not None:
        digests, _ = read_bundle(rt.blobs.stream(key, if_match=etag), [rec.manifest_size])
    return entry_problems(rec.user_id, device, [entry], [rec.signature], digests,
                          [0]).get(0)
