"""The pull phase of a sync pass (engine.py): verify every new feed entry
in order, then apply the newest version of each file.

Tamper evidence (invariant 8): every version, deletes included, is signed
into the account's history (history.py). A pull verifies every feed entry
in order before applying anything. An entry that cannot be verified on its
own (unsigned, not signed by the account, sealed for another place) is
refused and skipped loudly: recorded, listed by `sealsync status`, and the
rest goes on. A history failure (entries dropped or reordered, a rollback,
a fork) ends the pass with nothing applied and the cursor where it was.

`Pull` is a part of `Engine`, kept in its own module so that each phase
reads on its own; it uses the engine's state, history, transfer, placer
and meter, declared below.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .api import AuthError, HomeUnavailable, NotFound, PaymentRequired, ServerUnreachable
from .download import Version
from .errors import FeedError, HistoryError, IntegrityError, SealsyncClientError
from .history import History
from .names import shown
from .placing import Event, Placer
from .progress import Meter, size_of
from .report import Report, reason
from .selective import Withheld
from .state import State
from .transfer import Transfer

# Losing the server, the login, or a tamper check ends a pass; any other
# failure concerns one file, which is reported and retried on the next pass.
# PaymentRequired: a read-only account refuses every upload; the pull has
# run, nothing local is touched, and one line says why (cli.py, exit 5).
# HomeUnavailable: the same while the account's home region is down.
FATAL = (ServerUnreachable, AuthError, IntegrityError, PaymentRequired, HomeUnavailable)


class RefusedHead(SealsyncClientError):
    """The file's head is a version this device refused: that file waits
    (one file's error; the rest of the pass goes on)."""


class Pull:
    """Engine's pull: the remote versions the feed lists, verified and placed."""

    parallel: int
    state: State
    history: History
    transfer: Transfer
    place: Placer
    withheld: Withheld
    meter: Meter
    on_event: Event

    def pull(self, report: Report) -> None:
        """Verify every new feed entry in order (history.py), then apply the
        newest version of each file. The cursor is ours, never the server's:
        it moves only past what was verified and applied (or, for a version
        that could not be placed here, recorded to retry)."""
        self.place.clean_tmp()
        self.withheld.rules()
        self._retry_unplaced(report)
        self.withheld.release(self._head, self._apply, report)
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="sealsync-pull")
        try:
            self._pull_pages(pool, report)
        finally:
            pool.shutdown(cancel_futures=True)
        self.place.clean_parts()

    def _pull_pages(self, pool: ThreadPoolExecutor, report: Report) -> None:
        api = self.transfer.api
        # Expired versions skipped that no later entry of their file followed
        # yet: the head never expires, so one left at the feed's end is a
        # server withholding a file's newest version (reported, not applied).
        expired_last: dict[str, int] = {}
        while True:
            page = api.changes(self.state.cursor, limit=500)
            latest: dict[str, Version] = {}
            seq = self.state.cursor
            fetched = self._prefetch(pool, page["changes"])
            for c in page["changes"]:
                seq, file_id, revision = int(c["seq"]), str(c["file_id"]), int(c["revision"])
                expired_last.pop(file_id, None)
                entry = self.state.by_file_id(file_id)
                if not c["deleted"] and (entry is None or entry.revision >= revision) \
                        and self.history.verify_own(seq, file_id, revision):
                    continue  # our own upload (or delete) coming back: nothing to fetch
                try:
                    version = self._verified(seq, file_id, revision, c["deleted"], fetched)
                    if version.expired:  # superseded long ago: a later entry has the file
                        latest.pop(file_id, None)
                        expired_last[file_id] = revision
                        continue
                    latest[file_id] = version
                except HistoryError:
                    raise  # the feed's order, a rollback or a fork: the server lies
                except IntegrityError as exc:  # this entry alone is bad: skip it loudly
                    self._refuse(seq, file_id, revision, str(exc), report)
            # Deletes first: a file that became a directory elsewhere (or the
            # reverse) then replays without tripping over itself.
            self.meter.found(len(latest), sum(map(size_of, latest.values())))
            for version in sorted(latest.values(), key=lambda v: not is_delete(v)):
                self._apply(version, report)
                self.meter.done(1, size_of(version))
            self.state.cursor = seq
            if not page["has_more"]:
                self._withheld_newest(expired_last, report)
                return

    def _verified(self, seq: int, file_id: str, revision: int, deleted: bool,
                  fetched: dict[int, Future[Version]]) -> Version:
        """Entry `seq`'s version, verified into the history (history.py)."""
        if deleted:  # the server's own tombstone: no device signs those
            raise IntegrityError("a delete that no device signed")
        version = fetched[seq].result() if seq in fetched else \
            self.transfer.version(file_id, revision)
        self.history.verify_entry(seq, file_id, revision, version.manifest)
        return version

    def _withheld_newest(self, expired_last: dict[str, int], report: Report) -> None:
        for file_id, revision in sorted(expired_last.items()):
            entry = self.state.by_file_id(file_id)
            name = shown(entry.path) if entry else f"file {file_id}"
            report.errors.append(f"{name}: the server says revision {revision}, the newest it "
                                 "listed, has expired, but a file's newest version never "
                                 "expires: not applied (the server may be withholding it)")

    def _refuse(self, seq: int, file_id: str, revision: int, why: str,
                report: Report) -> None:
        """Record a feed entry that cannot be verified and go on without it
        (issue 15): one bad entry never stalls the folder. `sealsync status`
        lists it; a later valid revision of the file is applied as usual."""
        self.history.refuse(seq, file_id, revision, why)
        entry = self.state.by_file_id(file_id)
        name = shown(entry.path) if entry else f"file {file_id}"
        report.errors.append(f"{name}: change {seq} (revision {revision}) refused and "
                             f"skipped: {why}; see `sealsync status`")
        self.on_event("refused", name)

    def _prefetch(self, pool: ThreadPoolExecutor,
                  changes: list[dict[str, Any]]) -> dict[int, Future[Version]]:
        """Start fetching the manifests a page will need, `parallel` at a
        time (one request each would otherwise pace the pull); they are
        still verified one by one, in feed order."""
        fetched: dict[int, Future[Version]] = {}
        for c in changes:
            mine = self.state.verified(str(c["file_id"]), int(c["revision"]))
            if c["deleted"] or (mine is not None and mine.device_id == self.history.device_id):
                continue  # a server delete is refused unfetched; ours is known
            fetched[int(c["seq"])] = pool.submit(self.transfer.version, str(c["file_id"]),
                                                  int(c["revision"]))
        return fetched

    def _apply(self, version: Version, report: Report) -> None:
        """Apply one remote version; a failure that concerns only this file
        is reported and the version kept to retry (state `unplaced`)."""
        name = version.manifest.path if version.manifest else version.file_id
        try:
            done = self._apply_remote(version, report)
        except HistoryError:
            raise  # the feed itself is bent: nothing more is applied
        except IntegrityError as exc:
            # The version's signed manifest was verified; the bytes served for
            # it were not. Only this file is refused: one bad version (a server
            # that tampers, or a pack a buggy client broke) must not stop every
            # other file on every device for good. Loud: exit 4 (cli.py).
            report.integrity.append(f"{shown(name)}: {exc}: the server sent bytes that are "
                                    "not the signed version (tampered or damaged there); "
                                    "not applied, the local copy is kept; retrying on the "
                                    "next sync")
            self.state.set_unplaced(version.file_id, version.revision, name,
                                    "content failed its integrity check")
            self.on_event("integrity", shown(name))
            return
        except FATAL:
            raise
        except Exception as exc:
            why = reason(exc)
            report.errors.append(f"{shown(name)}: cannot be written here: {why}; "
                                 "retrying on the next sync")
            self.state.set_unplaced(version.file_id, version.revision, name, why)
            return
        if done:
            self.state.placed(version.file_id)
        else:  # settled by our push, normally in this same pass
            self.state.set_unplaced(version.file_id, version.revision, name,
                                    "renamed elsewhere, moved or deleted here")

    def _retry_unplaced(self, report: Report) -> None:
        for file_id, revision, path, _ in self.state.unplaced():
            entry = self.state.by_file_id(file_id)
            try:
                head = None if entry is not None and entry.revision >= revision \
                    else self._head(file_id)
            except RefusedHead as exc:
                report.errors.append(f"{shown(path)}: {exc}")
                continue
            if head is None:
                self.state.placed(file_id)
            else:
                self._apply(head, report)

    def _apply_remote(self, version: Version, report: Report) -> bool:
        """Apply a version; False when it waits for this device's push."""
        entry = self.state.by_file_id(version.file_id)
        if entry is not None and entry.revision >= version.revision:
            return True  # our own upload coming back, or already applied
        if self.withheld.intercept(version, entry, report):
            return True  # ignored or excluded here: held, not placed (selective.py)
        if is_delete(version):
            if entry is not None:
                self.place.remote_delete(entry, report)
            return True
        if entry is not None and self.place.moved_here(version, entry):
            return False
        self.place.write_version(version, entry, report)
        return True

    def _head(self, file_id: str) -> Version | None:
        """The file's head, checked against the history we verified: a
        server that answers "conflict" cannot roll us back or fork us."""
        try:
            head = self.transfer.version(file_id)
        except NotFound:
            return None
        if self.state.refused_top(file_id) >= head.revision:
            raise RefusedHead(f"its head on the server, revision {head.revision}, was "
                              "refused here (see `sealsync status`): it waits for a valid "
                              "revision")
        if head.manifest is None:
            raise FeedError(f"the server reports a delete of file {file_id} that no "
                            f"device signed")
        self.history.verify_head(file_id, head.revision, head.manifest)
        return head


def is_delete(v: Version) -> bool:
    """A remote delete: no manifest (the server's own), or a signed tombstone."""
    return v.manifest is None or v.manifest.tombstone
