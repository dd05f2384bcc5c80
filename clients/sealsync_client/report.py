"""What one sync pass did, for people and for `--json`.

Every path in a report is already `names.shown`: printable, and valid JSON
text even when the file's name is not UTF-8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    downloaded: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    deleted_here: list[str] = field(default_factory=list)
    deleted_remote: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "PATH: reason", one per file
    skipped: list[str] = field(default_factory=list)  # not synced: links, FIFOs, ...
    held: list[str] = field(default_factory=list)  # remote, not placed: ignored or excluded here
    # kept here, not uploaded: the account's storage quota is used up (one
    # line per pass says so, with the server's message; exit 6)
    over_quota: list[str] = field(default_factory=list)
    quota_message: str = ""
    # "PATH: why": a remote version whose content failed its integrity check
    # (the bytes served are not the signed version: tampered or damaged on
    # the server). Not applied, the local copy kept, retried every pass; the
    # rest of the pass goes on, and it ends with exit 4 (engine_pull.py).
    integrity: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.downloaded, self.uploaded, self.renamed, self.deleted_here,
                    self.deleted_remote, self.conflicts))

    def as_dict(self) -> dict[str, Any]:
        return {k: v if isinstance(v, str) else list(v) for k, v in self.__dict__.items()}

    def quota_line(self) -> str:
        """The pass's one line about the quota, or nothing."""
        if not self.over_quota:
            return ""
        n = len(self.over_quota)
        return (f"over quota: {n} file{'s' if n != 1 else ''} kept here, not uploaded "
                f"({self.quota_message}); they upload on a later sync once the quota allows")


def reason(exc: BaseException) -> str:
    """One line about what went wrong with one file."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__
