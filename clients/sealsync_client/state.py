"""A synced folder's local state: DIR/.sealsync/

    config.json   server URL, user id, device id and display name (no secrets)
    keys          the device key file (0600, sealed by the passphrase)
    device.key    this device's Ed25519 key (0600, sealed under the master key)
    state.db      SQLite: path -> file id, last synced revision and the local
                  fingerprint at that moment; the change-feed cursor; the token;
                  the signed history this device has verified (history.py)

Nothing here is ever sent to the server. The fingerprint (fingerprint.py)
tells "edited here since the last sync" apart from "unchanged", which is
what stops a download from overwriting a local edit. The tables and their
migration are in state_schema.py; this module holds the queries.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import SealsyncClientError
from .fingerprint import Fingerprint
from .names import META_DIR, from_bytes, stored_name, to_bytes
from .state_schema import open_db


@dataclass(frozen=True)
class Verified:
    """A version this device verified: its hash, signer and feed position."""

    file_id: str
    revision: int
    hash: bytes
    device_id: str
    counter: int
    seq: int | None


@dataclass(frozen=True)
class Sealed:
    """A version this device signed, and what became of it."""

    counter: int
    file_id: str
    revision: int
    hash: bytes
    status: str  # sealed | accepted | lost


class NotInitialised(SealsyncClientError):
    """This folder is not a Sealsync folder yet (run `sealsync init`)."""


class StateDamaged(NotInitialised):
    """state.db cannot be read (truncated, overwritten, a disk error).

    Neither repaired nor replaced in place: its history tables are this
    device's tamper evidence, and its record of what this device signed is
    what lets it tell its own past uploads from a server's forgery. A fresh
    state.db for the same device cannot pass that check for any version the
    device uploaded before (history.py), and it would reuse the device's
    signature counters. So the folder joins the account again as a new
    device: its files stay, identical ones are adopted, and a local edit
    becomes a conflict copy."""

    def __init__(self, db: Path, exc: BaseException) -> None:
        super().__init__(f"{db} is damaged ({exc}). {rejoin_advice(db.parent.parent)}")


def rejoin_advice(root: Path) -> str:
    """How a folder whose books are lost or rolled back syncs again: as a
    new device of its account (docs/CLIENT.md, "damaged books")."""
    try:
        config = Config.load(root)
        join = f"--server {config.server} --join {config.user_id}"
    except NotInitialised:
        join = "--server URL --join USER_ID"
    return (f"To sync this folder again, move {root / META_DIR} out of the folder and "
            f"join it as a new device: sealsync init {join} {root} (the passphrase and "
            "the Secret Key); your files stay, and a local edit is kept as a conflict copy")


def damaged(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the database file itself is corrupt
    or not a database (not a lock, a full disk or a bug)."""
    name = getattr(exc, "sqlite_errorname", None)
    return isinstance(name, str) and name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


@dataclass(frozen=True)
class Config:
    server: str
    user_id: str
    device_id: str
    device_name: str

    @staticmethod
    def path(root: Path) -> Path:
        return root / META_DIR / "config.json"

    @classmethod
    def load(cls, root: Path) -> Config:
        try:
            config = cls(**json.loads(cls.path(root).read_text()))
        except FileNotFoundError:
            raise NotInitialised(f"{root} is not a Sealsync folder: run "
                                 f"`sealsync init --server URL {root}` first") from None
        except OSError as exc:  # e.g. .sealsync is a file, or unreadable
            raise NotInitialised(f"{cls.path(root)} cannot be read: "
                                 f"{exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise NotInitialised(f"{cls.path(root)} is damaged: {exc}") from None
        # A hand edit can leave valid JSON of the wrong types, which would
        # otherwise fail much later as an unexpected error.
        wrong = [k for k, v in asdict(config).items() if not isinstance(v, str)]
        if wrong:
            raise NotInitialised(f"{cls.path(root)} is damaged: {', '.join(wrong)} "
                                 "must be text")
        return config

    def save(self, root: Path) -> None:
        meta_dir(root)
        tmp = self.path(root).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, self.path(root))


def meta_dir(root: Path) -> Path:
    d = root / META_DIR
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def device_key_path(root: Path) -> Path:
    """This device's Ed25519 key, sealed under the master key (devices.py)."""
    return meta_dir(root) / "device.key"


def keyfile_path(root: Path) -> Path:
    return root / META_DIR / "keys"


@dataclass(frozen=True)
class Entry:
    """A file as it was when last synced. `stored` is the name the format
    stores for it: the manifest's, kept while the local name is unchanged."""

    path: str
    file_id: str
    revision: int
    fp: Fingerprint
    dirty: bool = False
    stored: str = ""

    def __post_init__(self) -> None:
        if not self.stored:
            object.__setattr__(self, "stored", stored_name(self.path))




def _blob(path: str) -> bytes:
    return to_bytes(path)


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else from_bytes(value)


def _declaration(text: object) -> dict[str, Any] | None:
    """A sent_packs row's pack declaration, if it has the shape one has
    (packing.PackPlan.declaration); the server checks the rest."""
    try:
        d = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not (isinstance(d, dict) and isinstance(d.get("pack_id"), str)
            and isinstance(d.get("size"), int) and isinstance(d.get("blobs"), list)):
        return None
    for blob in d["blobs"]:
        if not (isinstance(blob, dict) and isinstance(blob.get("chunk"), str)
                and isinstance(blob.get("offset"), int)
                and isinstance(blob.get("length"), int)):
            return None
    return d


class State:
    def __init__(self, root: Path) -> None:
        self.root = root
        path = meta_dir(root) / "state.db"
        try:
            self.db = open_db(path)
        except Exception as exc:  # sqlite3 is imported late (state_schema.open_db)
            if damaged(exc):
                raise StateDamaged(path, exc) from None
            raise

    def close(self) -> None:
        self.db.close()

    # -- files --------------------------------------------------------------
    _F = "SELECT path, file_id, revision, size, mtime_ns, hash, dirty, ctime_ns, ino, " \
         "stored FROM files "

    @staticmethod
    def _entry(row: tuple[bytes, str, int, int, int, str, int, int, int, bytes | None]) -> Entry:
        fp = Fingerprint(row[3], row[4], row[5], row[7], row[8])
        return Entry(_text(row[0]), row[1], row[2], fp, bool(row[6]),
                     _text(row[9]) if row[9] is not None else "")

    def entries(self) -> dict[str, Entry]:
        rows = self.db.execute(self._F).fetchall()
        return {e.path: e for e in map(self._entry, rows)}

    def by_path(self, path: str) -> Entry | None:
        row = self.db.execute(self._F + "WHERE path = ?", (_blob(path),)).fetchone()
        return None if row is None else self._entry(row)

    def by_file_id(self, file_id: str) -> Entry | None:
        row = self.db.execute(self._F + "WHERE file_id = ?", (file_id,)).fetchone()
        return None if row is None else self._entry(row)

    def put(self, e: Entry) -> None:
        """Record a synced file, replacing any row for its path or its file id."""
        stored = None if e.stored == stored_name(e.path) else _blob(e.stored)
        with self.db:
            self.db.execute("DELETE FROM files WHERE path = ? OR file_id = ?",
                            (_blob(e.path), e.file_id))
            self.db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (_blob(e.path), e.file_id, e.revision, e.fp.size, e.fp.mtime_ns,
                             e.fp.hash, int(e.dirty), e.fp.ctime_ns, e.fp.ino, stored))
            self.db.execute("DELETE FROM unplaced WHERE file_id = ? AND revision <= ?",
                            (e.file_id, e.revision))

    def forget(self, file_id: str) -> None:
        self.db.execute("DELETE FROM files WHERE file_id = ?", (file_id,))

    # -- remote versions not placed yet -----------------------------------------
    def unplaced(self) -> list[tuple[str, int, str, str]]:
        """(file id, revision, stored path, reason) of every version to retry."""
        rows = self.db.execute("SELECT file_id, revision, path, reason FROM unplaced "
                               "ORDER BY path").fetchall()
        return [(r[0], r[1], _text(r[2]), r[3]) for r in rows]

    def set_unplaced(self, file_id: str, revision: int, path: str, reason: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO unplaced VALUES (?, ?, ?, ?)",
                        (file_id, revision, _blob(path), reason))

    def placed(self, file_id: str) -> None:
        self.db.execute("DELETE FROM unplaced WHERE file_id = ?", (file_id,))

    # -- packs sent, not yet committed (packing.SentPacks) ---------------------
    SENT_PACKS_KEPT = 64  # about 512 MiB of uploaded packs; older ones are re-sent

    def sent_packs(self) -> list[dict[str, Any]]:
        """The remembered declarations; a row that is not one (a damaged
        or hand-edited state.db) is dropped, not offered: every batch reads
        these, so one bad row would stop every upload of every pass. Its
        pack, if it exists, is only sent again."""
        rows = self.db.execute("SELECT pack_id, declaration FROM sent_packs "
                               "ORDER BY sent_at, pack_id").fetchall()
        good = {pack_id: d for pack_id, d in
                ((pack_id, _declaration(text)) for pack_id, text in rows) if d is not None}
        self.drop_sent_packs(pack_id for pack_id, _ in rows if pack_id not in good)
        return list(good.values())

    def add_sent_pack(self, declaration: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO sent_packs VALUES (?, ?, ?)",
                        (declaration["pack_id"], json.dumps(declaration), time.time_ns()))
        self.db.execute("DELETE FROM sent_packs WHERE pack_id NOT IN (SELECT pack_id FROM "
                        "sent_packs ORDER BY sent_at DESC LIMIT ?)", (self.SENT_PACKS_KEPT,))

    def drop_sent_packs(self, pack_ids: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM sent_packs WHERE pack_id = ?",
                            [(p,) for p in pack_ids])

    # -- meta ---------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def cursor(self) -> int:
        return int(self.get("cursor", "0") or 0)

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.set("cursor", str(value))

    # -- the verified history (history.py decides; this only stores) ----------
    _V = "SELECT file_id, revision, hash, device_id, counter, seq FROM history_versions "
    _S = "SELECT counter, file_id, revision, hash, status FROM history_sealed "

    def verified(self, file_id: str, revision: int) -> Verified | None:
        row = self.db.execute(self._V + "WHERE file_id = ? AND revision = ?",
                              (file_id, revision)).fetchone()
        return None if row is None else Verified(*row)

    def verified_at(self, seq: int) -> Verified | None:
        row = self.db.execute(self._V + "WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else Verified(*row)

    def verified_by_device(self, device_id: str, counter: int) -> Verified | None:
        row = self.db.execute(self._V + "WHERE device_id = ? AND counter = ?",
                              (device_id, counter)).fetchone()
        return None if row is None else Verified(*row)

    def top_revision(self, file_id: str, in_feed: bool) -> int:
        """The highest verified revision of a file (only those the feed showed,
        or any)."""
        where = " AND seq IS NOT NULL" if in_feed else ""
        row = self.db.execute("SELECT MAX(revision) FROM history_versions WHERE file_id = ?"
                              + where, (file_id,)).fetchone()
        return int(row[0] or 0)

    def add_verified(self, v: Verified) -> None:
        """Record a verified version, or give a known one its feed seq."""
        self.db.execute("INSERT INTO history_versions VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (file_id, revision) DO UPDATE SET seq = excluded.seq "
                        "WHERE history_versions.seq IS NULL",
                        (v.file_id, v.revision, v.hash, v.device_id, v.counter, v.seq))

    def feed_head(self) -> tuple[int, bytes]:
        """The last verified feed seq and the chain hash there (0, zeros at first)."""
        row = self.db.execute("SELECT seq, hash FROM history_feed ORDER BY seq DESC "
                              "LIMIT 1").fetchone()
        return (0, bytes(32)) if row is None else (int(row[0]), bytes(row[1]))

    def feed_hash(self, seq: int) -> bytes | None:
        if seq == 0:
            return bytes(32)
        row = self.db.execute("SELECT hash FROM history_feed WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else bytes(row[0])

    def append_feed(self, v: Verified, chain: bytes) -> None:
        """Record the next verified feed entry and the chain hash after it, at once."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.add_verified(v)
            self.db.execute("INSERT INTO history_feed VALUES (?, ?)", (v.seq, chain))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def refuse(self, seq: int, file_id: str, revision: int, reason: str,
               chain: bytes) -> None:
        """Record a refused feed entry and the chain hash after it, at once."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT INTO history_refused VALUES (?, ?, ?, ?)",
                            (seq, file_id, revision, reason))
            self.db.execute("INSERT INTO history_feed VALUES (?, ?)", (seq, chain))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def refused(self) -> list[tuple[int, str, int, str]]:
        """(seq, file id, revision, reason) of every refused feed entry."""
        return [(int(r[0]), r[1], int(r[2]), r[3]) for r in self.db.execute(
            "SELECT seq, file_id, revision, reason FROM history_refused ORDER BY seq")]

    def refused_top(self, file_id: str) -> int:
        row = self.db.execute("SELECT MAX(revision) FROM history_refused WHERE file_id = ?",
                              (file_id,)).fetchone()
        return int(row[0] or 0)

    def next_counter(self) -> int:
        """This device's next signing counter; persisted before it is used."""
        value = int(self.get("history_counter", "0") or 0) + 1
        self.set("history_counter", str(value))
        return value

    def add_sealed(self, s: Sealed) -> None:
        self.db.execute("INSERT INTO history_sealed VALUES (?, ?, ?, ?, ?)",
                        (s.counter, s.file_id, s.revision, s.hash, s.status))

    def sealed(self, counter: int) -> Sealed | None:
        row = self.db.execute(self._S + "WHERE counter = ?", (counter,)).fetchone()
        return None if row is None else Sealed(*row)

    def last_sealed(self, file_id: str, revision: int) -> Sealed | None:
        """The newest still-undecided version this device signed for a place."""
        row = self.db.execute(self._S + "WHERE file_id = ? AND revision = ? AND status = "
                              "'sealed' ORDER BY counter DESC LIMIT 1",
                              (file_id, revision)).fetchone()
        return None if row is None else Sealed(*row)

    def set_sealed_status(self, counter: int, status: str) -> None:
        self.db.execute("UPDATE history_sealed SET status = ? WHERE counter = ?",
                        (status, counter))
