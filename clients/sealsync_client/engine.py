"""One sync pass over a folder: pull what changed remotely, then push what
changed here.

Rules that keep every byte (invariant 5; placing.py puts versions in place):

* A download never replaces a local edit that has not been uploaded: the
  local version moves aside as `name (conflicted copy from DEVICE DATE).ext`.
* An upload is based on the last revision synced here. If the server says
  `conflict`, our bytes become a conflict copy and the winner is downloaded;
  a pure rename that lost gives way to the first name committed.
* A remote delete removes only an unchanged file; a delete here that loses
  to an edit elsewhere brings the edit back.
* One bad file never stops a pass: it is one line in the report and is
  retried on the next pass. Losing the server or the login, or a tamper
  check, ends it (FATAL).

A local rename is a vanished path plus a new path with the same content
hash: a new revision of the same file id whose manifest names the new path,
so only the manifest travels. Paths exist only inside encrypted manifests.

The pull (verify every feed entry in order, then apply the newest version
of each file; tamper evidence, invariant 8) is engine_pull.py's `Pull`;
the push, and what each upload's answer does here, is this module.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import outbox
from .api import Api, AuthError, OverQuota, ServerUnreachable
from .bars import Progress
from .devices import DeviceKey
from .engine_pull import FATAL, Pull, is_delete
from .errors import CannotRead, IntegrityError
from .fingerprint import fingerprint, hash_file, unhashed
from .history import History
from .keys import Keyring
from .manifest import Manifest
from .names import conflict_name as conflict_name  # tests import it from here
from .names import shown, stored_name
from .outbox import Upload as _Upload
from .pass_lock import one_pass
from .placing import Event, Placer, is_file
from .progress import NO_METER, Meter
from .report import Report as Report  # callers import it from here
from .report import reason
from .scan import Scan, scan
from .selective import Withheld
from .state import Entry, State, meta_dir
from .transfer import Prepared, Transfer
from .wire import new_file_id

if TYPE_CHECKING:
    import nacl.signing


class Engine(Pull):
    """One folder's sync passes: `sync` is `pull` (engine_pull.py), then `push`."""

    parallel = 16  # files in flight at once (each mostly waits for its commit)

    def __init__(self, root: Path, api: Api, ring: Keyring, user_id: str, device: str,
                 state: State, on_event: Event | None = None,
                 progress: Progress | None = None, *, signing_key: nacl.signing.SigningKey,
                 device_id: str, device_key: DeviceKey | None = None) -> None:
        self.root = root.resolve()
        self.state = state
        self.device = device
        self.history = History(state, ring, user_id, device_id, signing_key)
        self.transfer = Transfer(api, ring, user_id, device, progress=progress,
                                 sign=self.history.sign, sent_packs=state,
                                 device_key=device_key)
        self.on_event = on_event or (lambda kind, path: None)
        self.tmp = meta_dir(self.root) / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.place = Placer(self.root, state, device, self.transfer, self.on_event, self.tmp)
        self.withheld = Withheld(self.root, state, self.place)  # ignored and excluded paths
        self.meter: Meter = NO_METER  # the whole pass's progress (progress.py)
        self._digests: dict[str, str] = {}  # rel -> content hash its prepare took

    # -- the pass -------------------------------------------------------------
    def sync(self) -> Report:
        report = Report()
        with one_pass(self.tmp.parent):  # one pass per folder at a time (pass_lock.py)
            self.pull(report)
            self.push(report)
        return report

    def scan(self) -> Scan:
        return scan(self.root, self.withheld.rules())

    # -- push -------------------------------------------------------------------
    def push(self, report: Report) -> None:
        """Upload what changed here, in batches (outbox.py); the answers are
        applied to the state and the folder here, one at a time, in path
        order."""
        found = self.scan()
        report.skipped = [shown(p) for p, _ in found.skipped]
        local = found.files
        entries = self.state.entries()
        vanished = {p: e for p, e in entries.items() if p not in local and not found.hides(p)}
        by_hash: dict[str, Entry] = {}
        for e in vanished.values():
            by_hash.setdefault(e.fp.hash, e)
        gone_sizes = {e.fp.size for e in vanished.values()}
        plan: list[_Upload] = []
        for rel in sorted(local):
            entry = entries.get(rel)
            try:
                # A new file no vanished one could have been renamed to (no
                # size in common) is hashed by its upload's own read (the
                # prepare pass), not read once more here.
                fp = unhashed(local[rel]) if entry is None else None
                if fp is None or fp.size in gone_sizes:
                    fp = fingerprint(local[rel], entry.fp if entry else None)
            except FileNotFoundError:
                continue
            except OSError as exc:
                report.errors.append(f"{shown(rel)}: cannot be read: {reason(exc)}; "
                                     "retrying on the next sync")
                continue
            if entry is None:
                moved = by_hash.pop(fp.hash, None)
                if moved is not None:
                    vanished.pop(moved.path, None)
                    plan.append(_Upload(rel, stored_name(rel), fp, moved.file_id,
                                        moved.revision, moved.path))
                else:
                    plan.append(_Upload(rel, stored_name(rel), fp, new_file_id(), 0))
            elif fp.hash != entry.fp.hash or entry.dirty:
                plan.append(_Upload(rel, entry.stored, fp, entry.file_id, entry.revision))
            elif fp != entry.fp:  # touched, same content: remember the new fingerprint
                self.state.put(replace(entry, fp=fp))
        # What is left vanished without a new name was deleted here.
        work: list[tuple[_Upload | Entry, Callable[[], Prepared]]] = [
            (u, partial(self._prepare, u)) for u in plan]
        work += [(e, partial(self._prepare_delete, e)) for e in vanished.values()]
        self.meter.found(len(work), sum(u.fp.size for u in plan))
        fatal: BaseException | None = None
        try:
            for answered in outbox.send(self.transfer, work, self.parallel):
                # Settle every answer, even after a failure: an accepted
                # upload left unrecorded would come back as a conflict.
                for item, result in answered:
                    self.meter.done(1, item.fp.size if isinstance(item, _Upload) else 0)
                    if isinstance(item, _Upload):
                        step = partial(self._settle, self._hashed(item), result)
                    else:
                        step = partial(self._deleted, item, result)
                    fatal = self._guarded(item.rel if isinstance(item, _Upload) else item.path,
                                          step, report) or fatal
        except FATAL as exc:
            fatal = fatal or exc
        if fatal is not None:
            raise fatal

    @staticmethod
    def _guarded(rel: str, step: Callable[[Report], None],
                 report: Report) -> BaseException | None:
        """Run one file's step; a fatal error is returned (to raise once all
        are settled), any other is that file's error line."""
        try:
            step(report)
        except FATAL as exc:
            return exc
        except Exception as exc:
            report.errors.append(f"{shown(rel)}: {reason(exc)}; retrying on the next sync")
        return None

    def _prepare(self, u: _Upload) -> Prepared:
        """On the prepare pool: chunk, hash and seal; the content hash of an
        unhashed fingerprint comes from the same read (kept for `_hashed`)."""
        try:
            p = self.transfer.prepare(self.root, u.rel, u.file_id, u.base, u.stored,
                                      local_hash=not u.fp.hash)
        except OSError as exc:  # reading the file: the same line as at the scan
            raise CannotRead(f"cannot be read: {reason(exc)}") from exc
        if p.digest is not None:
            self._digests[u.rel] = p.digest
        return p

    def _hashed(self, u: _Upload) -> _Upload:
        """`u` with its content hash, once its prepare pass took it. Without
        one (its prepare failed) the hash stays "", which matches no file:
        the state never records it, as the upload reports an error."""
        if u.fp.hash:
            return u
        return replace(u, fp=replace(u.fp, hash=self._digests.pop(u.rel, "")))

    def _prepare_delete(self, e: Entry) -> Prepared:
        """Delete by uploading a signed tombstone: a delete is a version like
        any other, so a server can neither forge one nor hide it unnoticed
        (the server's own DELETE would be unsigned; clients refuse those)."""
        return self.transfer.seal(e.path, e.file_id, e.revision,
                                  Manifest.deleted(e.stored, time.time_ns(), self.device))

    def _send(self, u: _Upload) -> dict[str, Any] | Exception:
        """Upload one file now, as a batch of one (conflict copies). A failure
        that concerns only this file comes back as a value; losing the
        server or the login raises."""
        try:
            return self.transfer.upload(self.root, u.rel, u.file_id, u.base, u.stored)
        except (ServerUnreachable, AuthError):
            raise
        except Exception as exc:
            return exc

    def _upload(self, rel: str, file_id: str, base: int, report: Report) -> None:
        u = _Upload(rel, stored_name(rel), fingerprint(self.root / rel), file_id, base)
        self._settle(u, self._send(u), report)

    def _settle(self, u: _Upload, result: dict[str, Any] | Exception, report: Report) -> None:
        rel = u.rel
        if isinstance(result, OverQuota):  # kept here; one line for the pass, not one per file
            report.over_quota.append(shown(rel))
            report.quota_message = str(result)
            return
        if isinstance(result, Exception):
            report.errors.append(f"{shown(rel)}: {reason(result)}; retrying on the next sync")
            return
        status = result["status"]
        self._decided(u.file_id, u.base, result)
        if status == "accepted":
            self.state.put(Entry(rel, u.file_id, u.base + 1, u.fp, stored=u.stored))
            if u.renamed_from is not None:
                move = f"{shown(u.renamed_from)} -> {shown(rel)}"
                report.renamed.append(move)
                self.on_event("renamed", move)
            else:
                report.uploaded.append(shown(rel))
                self.on_event("uploaded", shown(rel))
        elif status == "conflict":
            self._lost_race(u, report)
        else:
            report.errors.append(f"{shown(rel)}: the server rejected it: "
                                 f"{result.get('reason', 'no reason given')}")

    def _lost_race(self, u: _Upload, report: Report) -> None:
        """Another device committed first: keep both versions. (If the winner
        holds exactly our bytes, e.g. our own earlier upload whose answer we
        never recorded, there is nothing to keep twice.)"""
        rel, file_id = u.rel, u.file_id
        top = self.state.refused_top(file_id)
        if top > u.base and self.transfer.api.get_file(file_id)["revision"] == top:
            # The head is a version this device refused: ours supersedes it.
            self._upload(rel, file_id, top, report)
            return
        head = self._head(file_id)
        if head is None or is_delete(head):
            # The winner is a delete: our edit lives on under its own name.
            self.state.forget(file_id)
            self._upload(rel, new_file_id(), 0, report)
            return
        copy = self.place.write_version(head, self.state.by_file_id(file_id), report)
        ours = self.root / rel
        if copy is None and is_file(ours) and self.state.by_path(rel) is None:
            if u.renamed_from is not None and hash_file(ours) == u.fp.hash:
                self._rename_lost(u, report)
                return
            copy = rel  # a rename that lost: the file keeps our new name, as a new file
        if copy is not None:
            self._upload(copy, new_file_id(), 0, report)

    def _rename_lost(self, u: _Upload, report: Report) -> None:
        """Our pure rename lost. If the winner renamed the file too, the first
        name stands and ours (the same bytes) goes. If the winner edited it
        in place, our rename still applies, to its content."""
        winner = self.state.by_file_id(u.file_id)
        assert winner is not None  # write_version just recorded it
        os.unlink(self.root / u.rel)
        if winner.path != u.renamed_from or not is_file(self.root / winner.path):
            move = f"{shown(u.rel)} -> {shown(winner.path)} (renamed on another device first)"
            report.renamed.append(move)
            self.on_event("renamed", move)
            return
        os.rename(self.root / winner.path, self.root / u.rel)
        self.state.put(replace(winner, path=u.rel, stored=stored_name(u.rel), dirty=True))
        self._upload(u.rel, u.file_id, winner.revision, report)

    def _decided(self, file_id: str, base: int, result: dict[str, Any]) -> None:
        """Tell the history what became of our upload of base + 1."""
        accepted = result["status"] == "accepted"
        if accepted and int(result["revision"]) != base + 1:
            raise IntegrityError(f"the server accepted file {file_id} as revision "
                                 f"{result['revision']}, not {base + 1}")
        self.history.settled(file_id, base + 1, accepted)

    def _deleted(self, e: Entry, answer: dict[str, Any] | Exception, report: Report) -> None:
        """Settle our tombstone upload."""
        if isinstance(answer, Exception):
            report.errors.append(f"{shown(e.path)}: delete not sent: {reason(answer)}; "
                                 "retrying on the next sync")
            return
        self._decided(e.file_id, e.revision, answer)
        if answer["status"] == "accepted":
            self.state.forget(e.file_id)
            report.deleted_remote.append(shown(e.path))
            self.on_event("deleted on server", shown(e.path))
        elif answer["status"] == "conflict":
            # Edited elsewhere meanwhile: the edit wins over our delete.
            head = self._head(e.file_id)
            self.state.forget(e.file_id)
            if head is not None and not is_delete(head):
                self.place.write_version(head, None, report)
        else:
            report.errors.append(f"{shown(e.path)}: delete rejected: {answer.get('reason')}")
