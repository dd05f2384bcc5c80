"""The schema of state.db (state.py) and the migration of older folders.

Kept apart from state.py's queries so that the tables can be read in one
place, and so that opening the database (its journal settings, its schema,
its upgrades) is one function.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

SCHEMA = """
-- Paths are BLOBs (names.to_bytes): a Linux name need not be UTF-8.
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    dirty INTEGER NOT NULL DEFAULT 0,  -- moved locally by us: the new path needs uploading
    ctime_ns INTEGER NOT NULL DEFAULT 0,
    ino INTEGER NOT NULL DEFAULT 0,
    stored BLOB  -- the name the format stores for `path` (NULL: names.stored_name(path))
);
-- Remote versions that could not be placed here (names.py, engine_pull.py): retried
-- on every pass, listed by `sealsync status`.
CREATE TABLE IF NOT EXISTS unplaced (
    file_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    path BLOB NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Packs this device PUT that no finished batch has fully committed yet
-- (packing.py): the next batch declares them again instead of re-sending.
CREATE TABLE IF NOT EXISTS sent_packs (
    pack_id TEXT PRIMARY KEY,
    declaration TEXT NOT NULL,  -- the batch request's `packs` item, JSON
    sent_at INTEGER NOT NULL
);
-- Every version this device has verified (history.py). seq is its change-feed
-- position, NULL until the feed has shown it (our own accepted uploads, and
-- heads fetched to settle a conflict, are known before the feed lists them).
CREATE TABLE IF NOT EXISTS history_versions (
    file_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    hash BLOB NOT NULL,
    device_id TEXT NOT NULL,
    counter INTEGER NOT NULL,
    seq INTEGER UNIQUE,
    PRIMARY KEY (file_id, revision)
);
CREATE UNIQUE INDEX IF NOT EXISTS history_by_device ON history_versions (device_id, counter);
-- The hash chain over the change feed, one row per verified seq.
CREATE TABLE IF NOT EXISTS history_feed (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL);
-- Feed entries this device refused and skipped (history.py `refuse`): listed
-- by `sealsync status`; the chain takes a refusal marker at their seq.
CREATE TABLE IF NOT EXISTS history_refused (
    seq INTEGER PRIMARY KEY,
    file_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    reason TEXT NOT NULL
);
-- What this device signed: sealed, then accepted or lost (a conflict).
CREATE TABLE IF NOT EXISTS history_sealed (
    counter INTEGER PRIMARY KEY,
    file_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    hash BLOB NOT NULL,
    status TEXT NOT NULL
);
-- last_sealed looks a place up once per settled upload: no table scan.
CREATE INDEX IF NOT EXISTS history_sealed_by_place ON history_sealed (file_id, revision);
"""


def open_db(path: Path) -> sqlite3.Connection:
    """state.db at `path`, with its schema created or brought up to date."""
    import sqlite3  # on first use, after Argon2id (crypto's note on peak memory)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # Commits append to the WAL without an fsync each (one per checkpoint):
    # a pass commits a few rows per file, and an fsync per commit made
    # state.db the largest cost of syncing 10,000 small files (13.7 of 30 s
    # for 2,000, profiled). Still atomic and consistent; a process killed
    # at any point loses nothing committed. Only an OS crash or power loss
    # may roll back the last commits: the state of a pass stopped a moment
    # earlier, which every pass already recovers from (a kill can land
    # anywhere: tests/client_model).
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    _migrate(db)
    return db


def _migrate(db: sqlite3.Connection) -> None:
    """Folders synced before names became bytes and fingerprints grew."""
    have = {row[1] for row in db.execute("PRAGMA table_info(files)")}
    for column in ("ctime_ns INTEGER NOT NULL DEFAULT 0",
                   "ino INTEGER NOT NULL DEFAULT 0", "stored BLOB"):
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE files ADD COLUMN {column}")
    db.execute("UPDATE files SET path = CAST(path AS BLOB) "
               "WHERE typeof(path) = 'text'")
