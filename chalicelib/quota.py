"""The quota gate at presign time (core/quota.py decides): one consistent
read of the account's metered TOTAL, then the pure check."""
from __future__ import annotations

from collections.abc import Iterable

from .config import Runtime
from .core import quota as core


def check_quota(rt: Runtime, user_id: str, entries: Iterable[core.Adding]) -> None:
    """413 over_quota before anything is recorded or presigned, unless the
    request only deletes. One GetItem, skipped for a request of deletes."""
    entries = list(entries)
    limit = rt.settings.prices.quota_bytes
    if limit <= 0 or all(e.is_delete for e in entries):
        return
    stored, _versions = rt.usage.total(user_id)
    core.check(stored, limit, entries, rt.settings.retention_days)
