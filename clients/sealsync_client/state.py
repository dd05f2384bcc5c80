"""A synced folder's local state: DIR/.sealsync/

    config.json   server URL, user id, device id and display name (no secrets)
    keys          the device key file (0600, sealed by the passphrase)
    state.db      SQLite: path -> file id, last synced revision and the local
                  fingerprint at that moment; the change-feed cursor; the token

Nothing here is ever sent to the server. The fingerprint (size, mtime_ns and
a BLAKE2b content hash) tells "edited here since the last sync" apart from
"unchanged", which is what stops a download from overwriting a local edit.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import SealsyncClientError

META_DIR = ".sealsync"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0  -- moved locally by us: the new path needs uploading
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class NotInitialised(SealsyncClientError):
    """This folder is not a Sealsync folder yet (run `sealsync init`)."""


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
            return cls(**json.loads(cls.path(root).read_text()))
        except FileNotFoundError:
            raise NotInitialised(f"{root} is not a Sealsync folder: run "
                                 f"`sealsync init --server URL {root}` first") from None
        except (ValueError, TypeError) as exc:
            raise NotInitialised(f"{cls.path(root)} is damaged: {exc}") from None

    def save(self, root: Path) -> None:
        meta_dir(root)
        tmp = self.path(root).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, self.path(root))


def meta_dir(root: Path) -> Path:
    d = root / META_DIR
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def keyfile_path(root: Path) -> Path:
    return root / META_DIR / "keys"


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime_ns: int
    hash: str


@dataclass(frozen=True)
class Entry:
    """A file as it was when last synced."""

    path: str
    file_id: str
    revision: int
    fp: Fingerprint
    dirty: bool = False


def hash_file(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32, person=b"sealsync:local")
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def fingerprint(path: Path, known: Fingerprint | None = None) -> Fingerprint:
    """The file's fingerprint; reuses `known`'s hash when size and mtime match."""
    st = path.stat()
    if known is not None and (known.size, known.mtime_ns) == (st.st_size, st.st_mtime_ns):
        return known
    return Fingerprint(st.st_size, st.st_mtime_ns, hash_file(path))


class State:
    def __init__(self, root: Path) -> None:
        import sqlite3  # on first use, after Argon2id (crypto's note on peak memory)
        self.root = root
        self.db = sqlite3.connect(meta_dir(root) / "state.db", isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- files --------------------------------------------------------------
    @staticmethod
    def _entry(row: tuple[str, str, int, int, int, str, int]) -> Entry:
        return Entry(row[0], row[1], row[2], Fingerprint(row[3], row[4], row[5]), bool(row[6]))

    def entries(self) -> dict[str, Entry]:
        rows = self.db.execute("SELECT path, file_id, revision, size, mtime_ns, hash, dirty "
                               "FROM files").fetchall()
        return {r[0]: self._entry(r) for r in rows}

    def by_path(self, path: str) -> Entry | None:
        row = self.db.execute("SELECT path, file_id, revision, size, mtime_ns, hash, dirty "
                              "FROM files WHERE path = ?", (path,)).fetchone()
        return None if row is None else self._entry(row)

    def by_file_id(self, file_id: str) -> Entry | None:
        row = self.db.execute("SELECT path, file_id, revision, size, mtime_ns, hash, dirty "
                              "FROM files WHERE file_id = ?", (file_id,)).fetchone()
        return None if row is None else self._entry(row)

    def put(self, e: Entry) -> None:
        """Record a synced file, replacing any row for its path or its file id."""
        with self.db:
            self.db.execute("DELETE FROM files WHERE path = ? OR file_id = ?",
                            (e.path, e.file_id))
            self.db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (e.path, e.file_id, e.revision, e.fp.size, e.fp.mtime_ns,
                             e.fp.hash, int(e.dirty)))

    def forget(self, file_id: str) -> None:
        self.db.execute("DELETE FROM files WHERE file_id = ?", (file_id,))

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
