"""One sync pass over a folder: pull what changed remotely, then push what
changed here.

Rules that keep every byte (invariant 5):

* A download never replaces a local edit that has not been uploaded. The
  local version moves aside to `name (conflicted copy from DEVICE DATE).ext`
  and is uploaded as a new file; the remote version takes the name.
* An upload is based on the last revision synced here. If the server says
  `conflict`, the same rule applies: our bytes become a conflict copy, the
  winner is downloaded. A conflict copy's name is derived from the original
  name with any earlier marker removed, so there are no copies of copies.
* A remote delete removes the local file only if it is unchanged since the
  last sync; an edited file stays, and is uploaded as a new file.
* A delete here that loses to an edit elsewhere brings the edit back.

A local rename is detected as a vanished path plus a new path with the same
content hash, and uploaded as a new revision of the same file id whose
manifest names the new path: the chunks are already stored, so only the
manifest travels. Paths exist only inside encrypted manifests.

Tamper evidence (invariant 8): every version, deletes included, is signed
into the account's history (history.py). A pull verifies every change-feed
entry in order before applying anything, and any integrity or history
failure ends the pass with nothing of that version applied and the cursor
left where it was, so the next pass checks it again.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import Api, ApiError, AuthError, NotFound, ServerUnreachable
from .errors import FeedError, IntegrityError, SealsyncClientError
from .history import History
from .keys import Keyring
from .manifest import Manifest, ManifestPlace, seal_manifest
from .state import META_DIR, Entry, Fingerprint, State, fingerprint, meta_dir
from .transfer import FileChanged, Progress, Transfer, Version, safe_rel
from .wire import new_file_id

if TYPE_CHECKING:
    import nacl.signing

Event = Callable[[str, str], None]
_MARKER = re.compile(r" \(conflicted copy from .* \d{4}-\d{2}-\d{2}\)(?: \d+)?$")


@dataclass
class Report:
    downloaded: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    deleted_here: list[str] = field(default_factory=list)
    deleted_remote: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.downloaded, self.uploaded, self.renamed, self.deleted_here,
                    self.deleted_remote, self.conflicts))

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


def conflict_name(rel: str, device: str, taken: Callable[[str], bool],
                  today: str | None = None) -> str:
    """`dir/name (conflicted copy from DEVICE YYYY-MM-DD).ext`, never nested."""
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension, or a dotfile such as ".bashrc"
        stem, dot, ext = name, "", ""
    stem = _MARKER.sub("", stem)
    device = device.replace("/", "-").replace(")", "-") or "device"
    day = today or time.strftime("%Y-%m-%d", time.gmtime())
    for n in range(1, 1000):
        suffix = f" (conflicted copy from {device} {day})" + (f" {n}" if n > 1 else "")
        candidate = (f"{head}/" if head else "") + stem + suffix + dot + ext
        if not taken(candidate):
            return candidate
    raise SealsyncClientError(f"too many conflict copies of {rel}")


@dataclass(frozen=True)
class _Upload:
    """A planned upload: `rel` as revision base + 1 of `file_id`."""

    rel: str
    fp: Fingerprint
    file_id: str
    base: int
    renamed_from: str | None = None


class Engine:
    parallel = 16  # files in flight at once (each mostly waits for its commit)

    def __init__(self, root: Path, api: Api, ring: Keyring, user_id: str, device: str,
                 state: State, on_event: Event | None = None,
                 progress: Progress | None = None, *, signing_key: nacl.signing.SigningKey,
                 device_id: str) -> None:
        self.root = root.resolve()
        self.state = state
        self.device = device
        self.history = History(state, ring, user_id, device_id, signing_key)
        self.transfer = Transfer(api, ring, user_id, device, progress=progress,
                                 sign=self.history.sign)
        self.on_event = on_event or (lambda kind, path: None)
        self.tmp = meta_dir(self.root) / "tmp"
        self.tmp.mkdir(exist_ok=True)

    # -- the pass -------------------------------------------------------------
    def sync(self) -> Report:
        report = Report()
        self.pull(report)
        self.push(report)
        return report

    def scan(self) -> dict[str, Path]:
        """Every regular file under the root, by relative POSIX path."""
        found: dict[str, Path] = {}
        for folder, dirs, files in os.walk(self.root):
            if Path(folder) == self.root:
                dirs[:] = [d for d in dirs if d != META_DIR]
            for name in files:
                path = Path(folder, name)
                if name.startswith(".sealsync-") or not path.is_file() or path.is_symlink():
                    continue  # our own temporary files; links are not synced
                found[path.relative_to(self.root).as_posix()] = path
        return found

    # -- pull -------------------------------------------------------------------
    def pull(self, report: Report) -> None:
        """Verify every new feed entry in order (history.py), then apply the
        newest version of each file. The cursor is ours, never the server's:
        it moves only past what was verified and applied."""
        api = self.transfer.api
        while True:
            page = api.changes(self.state.cursor, limit=500)
            latest: dict[str, Version] = {}
            seq = self.state.cursor
            for c in page["changes"]:
                seq, file_id, revision = int(c["seq"]), str(c["file_id"]), int(c["revision"])
                entry = self.state.by_file_id(file_id)
                if not c["deleted"] and entry is not None and entry.revision >= revision \
                        and self.history.verify_own(seq, file_id, revision):
                    continue  # our own upload coming back: nothing to fetch
                version = None if c["deleted"] else self.transfer.version(file_id, revision)
                self.history.verify_entry(seq, file_id, revision,
                                          None if version is None else version.manifest)
                assert version is not None  # an unsigned delete was refused
                latest[file_id] = version  # verified: revisions only go up
            for version in latest.values():
                try:
                    self._apply_remote(version, report)
                except FileChanged as exc:
                    report.errors.append(f"file {version.file_id}: {exc}")
            self.state.cursor = seq
            if not page["has_more"]:
                return

    def _unchanged(self, e: Entry) -> bool:
        """Is the file at e.path exactly what we last synced? (missing = no edit)"""
        path = self.root / e.path
        try:
            return fingerprint(path, e.fp).hash == e.fp.hash and not e.dirty
        except FileNotFoundError:
            return True

    def _apply_remote(self, version: Version, report: Report) -> None:
        entry = self.state.by_file_id(version.file_id)
        if entry is not None and entry.revision >= version.revision:
            return  # our own upload coming back, or already applied
        if _is_delete(version):
            if entry is not None:
                self._remote_delete(entry, report)
            return
        self._write_version(version, entry, report)

    def _remote_delete(self, entry: Entry, report: Report) -> None:
        path = self.root / entry.path
        if path.exists() and self._unchanged(entry):
            path.unlink()
            self._prune(path.parent)
            report.deleted_here.append(entry.path)
            self.on_event("deleted here", entry.path)
        # An edited file stays; without a row it is uploaded as a new file.
        self.state.forget(entry.file_id)

    def _write_version(self, v: Version, entry: Entry | None, report: Report) -> str | None:
        """Download `v` into place. Returns the name of an untracked conflict
        copy it made of a local edit (which the caller may upload at once)."""
        assert v.manifest is not None
        rel = safe_rel(v.manifest.path)
        tmp = self.tmp / v.file_id
        self.transfer.download(v, tmp)
        fp = fingerprint(tmp)
        copy = None
        ours = False  # is what sits at `rel` our copy of this file, safe to replace?
        if entry is not None:
            old = self.root / entry.path
            if old.exists() and not self._unchanged(entry):
                if entry.path == rel and fingerprint(old).hash == fp.hash:
                    ours = True  # the same edit made on both sides: nothing to keep
                elif entry.path == rel:  # edited here, not uploaded: keep it beside
                    copy = self._set_aside(rel, report, tracked=None)
                # (renamed remotely but edited here: the edit stays at the old
                #  name and, untracked now, is uploaded as a new file)
            elif old.exists() and entry.path != rel:
                old.unlink()
                self._prune(old.parent)
            else:
                ours = entry.path == rel
            self.state.forget(entry.file_id)
        dest = self.root / rel
        if dest.is_file() and not ours:
            other = self.state.by_path(rel)
            if fingerprint(dest, other.fp if other else None).hash != fp.hash:
                made = self._set_aside(rel, report, tracked=other)
                copy = copy if other is not None else made
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        self.state.put(Entry(rel, v.file_id, v.revision,
                             Fingerprint(fp.size, dest.stat().st_mtime_ns, fp.hash)))
        report.downloaded.append(rel)
        self.on_event("downloaded", rel)
        return copy

    def _set_aside(self, rel: str, report: Report, tracked: Entry | None) -> str:
        """Move a local file out of the way as a conflict copy. An untracked
        copy is uploaded as a new file; a tracked one keeps its file id and
        uploads the new name (dirty)."""
        copy = conflict_name(rel, self.device, lambda p: (self.root / p).exists())
        os.rename(self.root / rel, self.root / copy)
        if tracked is not None:
            self.state.put(Entry(copy, tracked.file_id, tracked.revision, tracked.fp,
                                 dirty=True))
        report.conflicts.append(copy)
        self.on_event("conflict", copy)
        return copy

    def _prune(self, folder: Path) -> None:
        """Remove directories a remote delete or rename left empty."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    # -- push -------------------------------------------------------------------
    def push(self, report: Report) -> None:
        """Upload what changed here. Transfers run on a thread pool (each one
        mostly waits for its commit); their results are applied to the state
        and the folder here, one at a time, in path order."""
        entries = self.state.entries()
        local = self.scan()
        vanished = {p: e for p, e in entries.items() if p not in local}
        by_hash: dict[str, Entry] = {}
        for e in vanished.values():
            by_hash.setdefault(e.fp.hash, e)
        plan: list[_Upload] = []
        for rel in sorted(local):
            entry = entries.get(rel)
            try:
                fp = fingerprint(local[rel], entry.fp if entry else None)
            except FileNotFoundError:
                continue
            if entry is None:
                moved = by_hash.pop(fp.hash, None)
                if moved is not None:
                    vanished.pop(moved.path, None)
                    plan.append(_Upload(rel, fp, moved.file_id, moved.revision, moved.path))
                else:
                    plan.append(_Upload(rel, fp, new_file_id(), 0))
            elif fp.hash != entry.fp.hash or entry.dirty:
                plan.append(_Upload(rel, fp, entry.file_id, entry.revision))
            elif fp != entry.fp:  # touched, same content: remember the new mtime
                self.state.put(Entry(rel, entry.file_id, entry.revision, fp))
        with ThreadPoolExecutor(self.parallel) as pool:
            sent = [(u, pool.submit(self._send, u)) for u in plan]
            # What is left vanished without a new name was deleted here.
            gone = [(e, pool.submit(self._delete, e)) for e in vanished.values()]
            fatal: SealsyncClientError | None = None
            # Settle every transfer that finished, even after a failure: an
            # accepted upload left unrecorded would come back as a conflict.
            for u, future in sent:
                try:
                    self._settle(u, future.result(), report)
                except (ServerUnreachable, AuthError, IntegrityError) as exc:
                    fatal = fatal or exc
            for e, deletion in gone:
                try:
                    self._deleted(e, deletion.result(), report)
                except (ServerUnreachable, AuthError, IntegrityError) as exc:
                    fatal = fatal or exc
            if fatal is not None:
                raise fatal

    def _send(self, u: _Upload) -> dict[str, Any] | Exception:
        """Upload one file (on a worker thread). A failure that concerns only
        this file (it changed, vanished, is too large, or the server refused
        it) comes back as a value; losing the server or the login raises."""
        try:
            return self.transfer.upload(self.root, u.rel, u.file_id, u.base)
        except (ServerUnreachable, AuthError):
            raise
        except (FileChanged, FileNotFoundError, ApiError) as exc:
            return exc

    def _upload(self, rel: str, fp: Fingerprint, file_id: str, base: int,
                report: Report) -> None:
        u = _Upload(rel, fp, file_id, base)
        self._settle(u, self._send(u), report)

    def _settle(self, u: _Upload, result: dict[str, Any] | Exception, report: Report) -> None:
        rel = u.rel
        if isinstance(result, Exception):
            report.errors.append(f"{rel}: {result}; retrying on the next sync")
            return
        status = result["status"]
        self._decided(u.file_id, u.base, result)
        if status == "accepted":
            self.state.put(Entry(rel, u.file_id, u.base + 1, u.fp))
            if u.renamed_from is not None:
                report.renamed.append(f"{u.renamed_from} -> {rel}")
                self.on_event("renamed", f"{u.renamed_from} -> {rel}")
            else:
                report.uploaded.append(rel)
                self.on_event("uploaded", rel)
        elif status == "conflict":
            self._lost_race(rel, u.file_id, report)
        else:
            report.errors.append(f"{rel}: the server rejected it: "
                                 f"{result.get('reason', 'no reason given')}")

    def _lost_race(self, rel: str, file_id: str, report: Report) -> None:
        """Another device committed first: keep both versions. (If the winner
        holds exactly our bytes, e.g. our own earlier upload whose answer we
        never recorded, there is nothing to keep twice.)"""
        head = self._head(file_id)
        if head is None or _is_delete(head):
            # The winner is a delete: our edit lives on under its own name.
            self.state.forget(file_id)
            self._upload(rel, fingerprint(self.root / rel), new_file_id(), 0, report)
            return
        copy = self._write_version(head, self.state.by_file_id(file_id), report)
        if copy is None and (self.root / rel).is_file() and self.state.by_path(rel) is None:
            copy = rel  # a rename that lost: the file keeps our new name, as a new file
        if copy is not None:
            self._upload(copy, fingerprint(self.root / copy), new_file_id(), 0, report)

    def _delete(self, e: Entry) -> dict[str, Any]:
        """Delete by uploading a signed tombstone: a delete is a version like
        any other, so a server can neither forge one nor hide it unnoticed
        (the server's own DELETE would be unsigned; clients refuse those)."""
        place = ManifestPlace.for_upload(self.transfer.user_id, e.file_id, e.revision)
        tombstone = self.history.sign(place, Manifest.deleted(e.path, time.time_ns(),
                                                              self.device))
        envelope = seal_manifest(self.transfer.ring, place, tombstone)
        api = self.transfer.api
        ticket = api.create_upload(e.file_id, e.revision, len(envelope), [])
        api.put_blob(ticket["manifest_url"], envelope)
        return api.wait_upload(ticket["upload_id"])

    def _decided(self, file_id: str, base: int, result: dict[str, Any]) -> None:
        """Tell the history what became of our upload of base + 1."""
        accepted = result["status"] == "accepted"
        if accepted and int(result["revision"]) != base + 1:
            raise IntegrityError(f"the server accepted file {file_id} as revision "
                                 f"{result['revision']}, not {base + 1}")
        self.history.settled(file_id, base + 1, accepted)

    def _deleted(self, e: Entry, result: dict[str, Any], report: Report) -> None:
        self._decided(e.file_id, e.revision, result)
        if result["status"] == "accepted":
            self.state.forget(e.file_id)
            report.deleted_remote.append(e.path)
            self.on_event("deleted on server", e.path)
        elif result["status"] == "conflict":
            # Edited elsewhere meanwhile: the edit wins over our delete.
            head = self._head(e.file_id)
            self.state.forget(e.file_id)
            if head is not None and not _is_delete(head):
                self._write_version(head, None, report)
        else:
            report.errors.append(f"{e.path}: delete rejected: {result.get('reason')}")

    def _head(self, file_id: str) -> Version | None:
        """The file's head, checked against the history we verified: a
        server that answers "conflict" cannot roll us back or fork us."""
        try:
            head = self.transfer.version(file_id)
        except NotFound:
            return None
        if head.manifest is None:
            raise FeedError(f"the server reports a delete of file {file_id} that no "
                            f"device signed")
        self.history.verify_head(file_id, head.revision, head.manifest)
        return head


def _is_delete(v: Version) -> bool:
    return v.manifest is None or v.manifest.tombstone


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
