"""What the client state machine acts on: 2 or 3 devices of one fresh
account, each a real folder synced by the real engine against the local
stack, plus the model (every content a sync could see) and the checks.

File system operations take paths as bytes (os.fsencode), so a name that
is not UTF-8 is written as the user's own bytes; Python shows it as a str
with surrogate escapes. Every operation returns a short description, or
None when it had nothing to act on (a missing file, a parent that is a
file...): the rule was then idle.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import time
import traceback
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from hypothesis import note
from sealsync_client.engine import Report
from sealsync_client.folder import Folder, init_folder, open_folder
from sealsync_client.manifest import ManifestPlace, open_manifest
from sealsync_client.transfer import Version

from tests.client_e2e.conftest import FAST, PASSPHRASE
from tests.client_e2e.test_two_devices import every_revision
from tests.client_model.conftest import Stats
from tests.client_model.kills import Killed, KillSwitch

# -- which operations run ------------------------------------------------------
# SEALSYNC_CLIENT_SKIP=samesize,nonutf8,... leaves out name groups or
# operations (to look past a known bug). The default runs everything.
SKIP = {s.strip() for s in os.environ.get("SEALSYNC_CLIENT_SKIP", "").split(",") if s.strip()}
OPERATIONS = {"samesize", "swap", "dirrename", "typechange", "concurrent", "kill", "exclude"}

# -- names -----------------------------------------------------------------------
LONG = "l" * 246 + ".txt"  # 250 bytes: a conflict copy of it must be shortened
NON_UTF8 = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: 'caf\udce9.txt'
NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")
NAME_GROUPS: dict[str, list[str]] = {
    "plain": ["a.txt", "b.md", "d/c.txt", "d/e/f.bin", "g"],
    "backslash": ["a\\b.txt"],
    "long": [LONG, "d/" + LONG],
    "nonutf8": [NON_UTF8, "d/" + NON_UTF8],
    "nfc": [NFC, NFD],
    "reserved": ["CON", "aux.txt", "x:y", "d/nul"],
    "sealsync": [".sealsync-notes"],
    # Ignored by the default rules on every device: never leave the device
    # that wrote them (ignore.py).
    "ignored": ["x.swp", "d/.DS_Store"],
    # Under the subtree dev1 keeps on the server only (EXCLUDED).
    "excluded": ["d2/k.txt"],
}
if SKIP - OPERATIONS - set(NAME_GROUPS):
    raise ValueError(f"SEALSYNC_CLIENT_SKIP: unknown {sorted(SKIP - OPERATIONS - set(NAME_GROUPS))}"
                     f"; use {sorted(OPERATIONS | set(NAME_GROUPS))}")
FILE_NAMES = [n for group, names in NAME_GROUPS.items() if group not in SKIP for n in names]
DIR_NAMES = ["d", "d2", "d/e", "moved"] + (["x:y"] if "reserved" not in SKIP else []) \
    + (["caf\u00e9"] if "nfc" not in SKIP else [])
SIZES = [30, 3000, 200_000]  # inline, inline, chunked (1-3 chunks)
# dev1 excludes this subtree from the start (`sealsync exclude`): it holds
# only what dev1 itself put there, and the other devices all of it.
EXCLUDED = "d2"
EXCLUDING = 1 if "exclude" not in SKIP else -1


def ignored_name(rel: str) -> bool:
    """The pool's names that the default ignore rules leave out (written
    here again, not taken from ignore.py: the check does not trust the
    code it checks); a conflict copy keeps the extension, and what is in
    a directory of such a name is left out with it (file_to_dir)."""
    return any(part.endswith(".swp") or part == ".DS_Store" for part in rel.split("/"))


def in_excluded(rel: str) -> bool:
    return rel == EXCLUDED or rel.startswith(EXCLUDED + "/")

# -- report errors a documented rule allows ------------------------------------------
ALLOWED_ERRORS = [
    re.compile(r"changed while it was being uploaded"),  # the file changed mid-upload
]


class Violation(AssertionError):
    """A check of the model failed."""

    def __init__(self, message: str) -> None:
        super().__init__(abbrev(message))


def fail(message: str) -> NoReturn:
    """Every violation is raised here, outside any except block, so that
    hypothesis sees one origin whatever broke: with syncs racing, a replay
    may break differently (another crash first), and two origins would make
    it report a flaky test instead of the shrunk steps."""
    raise Violation(message)


def abbrev(text: str) -> str:
    """The long name's run of l's, abbreviated in messages."""
    return re.sub(r"l{20,}", lambda m: f"<{len(m.group())} l's>", text)


def stored_name(rel: str) -> str:
    """The name as the format stores it (FORMAT.md section 5): NFC for each
    component that is valid UTF-8, the other components unchanged. Written
    here again, not imported, so the check does not trust the code it checks."""
    parts = []
    for part in rel.split("/"):
        try:
            part.encode("utf-8")  # strict: surrogate escapes fail
        except UnicodeEncodeError:
            parts.append(part)
        else:
            parts.append(unicodedata.normalize("NFC", part))
    return "/".join(parts)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bpath(root: Path, rel: str) -> bytes:
    return os.fsencode(root) + b"/" + os.fsencode(rel)


def scan(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """(every file's content by relative path, every directory), .sealsync/ excluded."""
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    top = os.fsencode(root)
    for folder, subdirs, names in os.walk(top):
        if folder == top:
            subdirs[:] = [d for d in subdirs if d != b".sealsync"]
        rel_folder = os.path.relpath(folder, top)
        for d in subdirs:
            dirs.append(os.fsdecode(os.path.normpath(os.path.join(rel_folder, d))))
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                files[os.fsdecode(os.path.normpath(os.path.join(rel_folder, name)))] = f.read()
    return files, sorted(dirs)


def show(rel: str) -> str:
    """A path for a step's note: the long name abbreviated."""
    return abbrev(repr(rel))


def short(data: bytes) -> str:
    return repr(data[:24]) + (f"... ({len(data)} bytes)" if len(data) > 24 else "")


@dataclass
class Device:
    index: int
    root: Path
    folder: Folder

    @property
    def name(self) -> str:
        return f"dev{self.index}"


@dataclass
class World:
    server: str
    base: Path
    n_devices: int
    devices: list[Device] = field(default_factory=list)
    # digest -> where it was seen: every content a starting sync pass saw
    written: dict[bytes, str] = field(default_factory=dict)
    counter: int = 0

    def __post_init__(self) -> None:
        first = init_folder(self.base / "dev0", self.server, PASSPHRASE,
                            device_name="dev0", cost=FAST)
        self.devices.append(Device(0, first.root, first))
        for i in range(1, self.n_devices):
            f = init_folder(self.base / f"dev{i}", self.server, PASSPHRASE,
                            device_name=f"dev{i}", join_user_id=first.config.user_id, cost=FAST,
                            secret_key=first.secret_key)
            if i == EXCLUDING:
                f.engine().withheld.set_excluded([EXCLUDED])
            self.devices.append(Device(i, f.root, f))

    def close(self) -> None:
        for d in self.devices:
            d.folder.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def device(self, i: int) -> Device:
        return self.devices[i % len(self.devices)]

    # -- the user's operations -------------------------------------------------
    def content(self, dev: Device, size: int) -> bytes:
        """New bytes, never written before (a tag), of exactly `size` bytes."""
        self.counter += 1
        tag = f"<v{self.counter} {dev.name}>".encode()
        body = random.Random(self.counter).randbytes(max(0, size - len(tag)))
        return (tag + body)[:max(size, len(tag))]

    def _write(self, dev: Device, rel: str, data: bytes, mtime_ns: int | None = None) -> bool:
        path = bpath(dev.root, rel)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            return False  # a parent is a file, or the name is a directory
        now = time.time_ns() if mtime_ns is None else mtime_ns
        os.utime(path, ns=(now, now))
        return True

    def files(self, dev: Device) -> list[str]:
        return sorted(scan(dev.root)[0])

    def dirs(self, dev: Device) -> list[str]:
        return scan(dev.root)[1]

    def create(self, dev: Device, rel: str, size: int) -> str | None:
        data = self.content(dev, size)
        return f"write {show(rel)} {short(data)}" if self._write(dev, rel, data) else None

    def edit(self, dev: Device, pick: int, size: int) -> str | None:
        files = self.files(dev)
        if not files:
            return None
        rel = files[pick % len(files)]
        data = self.content(dev, size)
        return f"edit {show(rel)} {short(data)}" if self._write(dev, rel, data) else None

    def edit_same_size_mtime(self, dev: Device, pick: int) -> str | None:
        """New content of the same length, and the old mtime put back (as
        rsync -t, tar or cp -p do)."""
        files = self.files(dev)
        if not files:
            return None
        rel = files[pick % len(files)]
        st = os.stat(bpath(dev.root, rel))
        data = self.content(dev, st.st_size)
        if len(data) != st.st_size:
            return None  # too short to hold a new tag
        self._write(dev, rel, data, mtime_ns=st.st_mtime_ns)
        return f"same-size-mtime edit {show(rel)} {short(data)}"

    def rename(self, dev: Device, pick: int, dest: str) -> str | None:
        files = self.files(dev)
        if not files:
            return None
        src = files[pick % len(files)]
        if src == dest:
            return None
        try:
            os.makedirs(os.path.dirname(bpath(dev.root, dest)), exist_ok=True)
            os.rename(bpath(dev.root, src), bpath(dev.root, dest))
        except (FileExistsError, NotADirectoryError, IsADirectoryError, OSError):
            return None
        return f"rename {show(src)} -> {show(dest)}"

    def swap(self, dev: Device, pick: int, other: int) -> str | None:
        files = self.files(dev)
        if len(files) < 2:
            return None
        a = files[pick % len(files)]
        b = files[(pick + 1 + other % (len(files) - 1)) % len(files)]
        tmp = bpath(dev.root, ".swap-tmp")
        os.rename(bpath(dev.root, a), tmp)
        os.rename(bpath(dev.root, b), bpath(dev.root, a))
        os.rename(tmp, bpath(dev.root, b))
        return f"swap {show(a)} <-> {show(b)}"

    def delete(self, dev: Device, pick: int) -> str | None:
        files = self.files(dev)
        if not files:
            return None
        rel = files[pick % len(files)]
        os.remove(bpath(dev.root, rel))
        return f"delete {show(rel)}"

    def rename_dir(self, dev: Device, pick: int, dest: str) -> str | None:
        dirs = self.dirs(dev)
        if not dirs:
            return None
        src = dirs[pick % len(dirs)]
        if dest == src or dest.startswith(src + "/") or os.path.lexists(bpath(dev.root, dest)):
            return None
        try:
            os.makedirs(os.path.dirname(bpath(dev.root, dest)), exist_ok=True)
            os.rename(bpath(dev.root, src), bpath(dev.root, dest))
        except OSError:
            return None
        return f"rename dir {show(src)} -> {show(dest)}"

    def file_to_dir(self, dev: Device, pick: int) -> str | None:
        files = self.files(dev)
        if not files:
            return None
        rel = files[pick % len(files)]
        os.remove(bpath(dev.root, rel))
        os.mkdir(bpath(dev.root, rel))
        data = self.content(dev, 30)
        self._write(dev, rel + "/in.txt", data)
        return f"file -> dir {show(rel)} (+ in.txt {short(data)})"

    def dir_to_file(self, dev: Device, pick: int) -> str | None:
        dirs = self.dirs(dev)
        if not dirs:
            return None
        rel = dirs[pick % len(dirs)]
        shutil.rmtree(bpath(dev.root, rel))
        data = self.content(dev, 30)
        self._write(dev, rel, data)
        return f"dir -> file {show(rel)} {short(data)}"

    # -- syncing -----------------------------------------------------------------------
    def seen(self, dev: Device) -> dict[bytes, str]:
        """What a pass starting now is responsible for: not the files it must
        leave out (ignored names, dev1's excluded subtree), which only the
        user changes, and which stay where they are."""
        return {digest(data): f"{dev.name}:{show(rel)} {short(data)}"
                for rel, data in scan(dev.root)[0].items()
                if not ignored_name(rel) and not (dev.index == EXCLUDING and in_excluded(rel))}

    def track(self, seen: dict[bytes, str]) -> None:
        for k, where in seen.items():
            self.written.setdefault(k, where)

    def _pass(self, dev: Device) -> Report:
        Stats.passes += 1
        try:
            return dev.folder.engine().sync()
        except Exception:
            crash = traceback.format_exc()
        fail(f"check 3: a sync pass on {dev.name} raised:\n{crash}")

    def check_errors(self, dev: Device, report: Report) -> None:
        bad = [e for e in report.errors if not any(p.search(e) for p in ALLOWED_ERRORS)]
        if bad:
            fail(f"check 3: {dev.name}'s pass reported errors no rule allows: {bad}")
        if dev.index == EXCLUDING and any(in_excluded(p) for p in report.downloaded):
            fail(f"check 1b: {dev.name} downloaded into its excluded {EXCLUDED}: "
                 f"{report.downloaded}")

    def sync(self, dev: Device) -> Report:
        self.track(self.seen(dev))
        report = self._pass(dev)
        note(f"  {dev.name} synced: {_brief(report)}")
        self.check_errors(dev, report)
        return report

    def sync_together(self, a: Device, b: Device) -> None:
        """Two passes at the same moment: their uploads race at the server."""
        self.track(self.seen(a))
        self.track(self.seen(b))
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(self._pass, d) for d in (a, b)]
            reports = [f.result() for f in futures]
        for d, r in zip((a, b), reports, strict=True):
            note(f"  {d.name} synced: {_brief(r)}")
            self.check_errors(d, r)

    def interrupted_sync(self, dev: Device, at: int, kind: str, after: bool) -> bool:
        """A pass killed at its `at`-th blob transfer; then the process
        restarts (the Folder is closed and opened again). Contents the
        killed pass saw are tracked only if the pass removed them from the
        folder: what is still there, the user may still overwrite before any
        pass completes, which is not the engine's loss."""
        before = self.seen(dev)
        switch = KillSwitch(dev.folder, at, kind, after)
        try:
            report = self._pass(dev)
        except Killed as exc:
            note(f"  {dev.name} killed: {exc}")
            Stats.kills += 1
            after_kill = self.seen(dev)
            self.track({k: v for k, v in before.items() if k not in after_kill})
            dev.folder.close()
            dev.folder = open_folder(dev.root, PASSPHRASE)
            return True
        switch.remove()
        self.track(before)
        note(f"  {dev.name} synced (the kill never fired): {_brief(report)}")
        self.check_errors(dev, report)
        return False

    # -- the checks ----------------------------------------------------------------------
    def settle(self, rounds: int = 10) -> None:
        """Sync every device in turn until one whole round changes nothing,
        then check the model."""
        for _ in range(rounds):
            reports = [self.sync(d) for d in self.devices]
            if not any(r.changed for r in reports):
                break
        else:
            fail(f"check: no quiescence after {rounds} rounds; the last round: "
                            f"{[_brief(r) for r in reports]}")
        self.check_converged()

    def stored_tree(self, dev: Device) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for rel, data in scan(dev.root)[0].items():
            name = stored_name(rel)
            if name in out:
                fail(f"check 1: two files on {dev.name} store as one name {name!r}:"
                                f" {[r for r in scan(dev.root)[0] if stored_name(r) == name]}")
            out[name] = data
        return out

    def check_converged(self) -> None:
        trees = [self.stored_tree(d) for d in self.devices]
        # 4. no partial file left, nothing in .sealsync/tmp
        for d, t in zip(self.devices, trees, strict=True):
            parts = [p for p in t if p.endswith(".part")]
            if parts:
                fail(f"check 4: {d.name} has partial files: {parts}")
            tmp = d.root / ".sealsync" / "tmp"
            left = os.listdir(tmp) if tmp.exists() else []
            if left:
                fail(f"check 4: {d.name}'s .sealsync/tmp is not empty: {left}")
        # 1. every device holds the same tree, but for ignored files, which
        # stay where they were written, and the subtree dev1 excludes
        trees = [{p: data for p, data in t.items() if not ignored_name(p)} for t in trees]
        self.check_excluded(trees)
        for d, t in zip(self.devices[1:], trees[1:], strict=True):
            if d.index == EXCLUDING:
                continue
            if t != trees[0]:
                only0 = sorted(set(trees[0]) - set(t))
                only = sorted(set(t) - set(trees[0]))
                differ = sorted(p for p in set(t) & set(trees[0]) if t[p] != trees[0][p])
                fail(f"check 1: dev0 and {d.name} differ after settling: only on "
                                f"dev0 {only0}, only on {d.name} {only}, different content "
                                f"{differ}")
        # 2. no content lost (in any folder, ignored and excluded files too)
        here = {digest(data) for d in self.devices for data in scan(d.root)[0].values()}
        missing = {k: v for k, v in self.written.items() if k not in here}
        if missing:
            stored = {digest(data) for data in every_stored_version(self.devices[0].folder,
                                                                    self.base / "versions")}
            lost = [v for k, v in missing.items() if k not in stored]
            if lost:
                fail(f"check 2: content lost (in no folder, not on the server): "
                                f"{lost}")


    def check_excluded(self, trees: list[dict[str, bytes]]) -> None:
        """1b. Outside the excluded subtree, the excluding device holds what
        the others hold (check_errors sees that nothing is downloaded into it)."""
        if EXCLUDING not in range(len(self.devices)):
            return
        mine = trees[EXCLUDING]
        other = trees[0]
        outside = {p: v for p, v in mine.items() if not in_excluded(p)}
        theirs = {p: v for p, v in other.items() if not in_excluded(p)}
        if outside != theirs:
            fail(f"check 1b: dev{EXCLUDING} (excluding {EXCLUDED}) and dev0 differ outside "
                 f"it: only on dev0 {sorted(set(theirs) - set(outside))}, only on "
                 f"dev{EXCLUDING} {sorted(set(outside) - set(theirs))}, different content "
                 f"{sorted(p for p in set(outside) & set(theirs) if outside[p] != theirs[p])}")


def every_stored_version(folder: Folder, scratch: Path) -> list[bytes]:
    """Every revision of every file the account ever had, downloaded.
    (tests/client_e2e's helper, without its path check: a stored name the
    client refuses to place must not hide the content.)"""
    api, transfer = folder.api, folder.engine().transfer
    out = []
    scratch.mkdir(parents=True, exist_ok=True)
    for file_id, revision in every_revision(folder):
        body = api.get_file(file_id, revision)
        if body.get("deleted"):
            continue
        rng = body.get("manifest_range")  # a batch commit: a slice of its bundle
        envelope = api.get_blob(body["manifest_url"],
                                (rng["offset"], rng["length"]) if rng else None)
        manifest = open_manifest(transfer.ring, ManifestPlace.for_download(
            folder.config.user_id, file_id, int(body["revision"])), envelope)
        if manifest.tombstone:
            continue
        dest = scratch / f"{file_id}.{revision}"
        transfer.download(Version(file_id, int(body["revision"]), body, manifest), dest)
        out.append(dest.read_bytes())
    return out


def _brief(r: Report) -> str:
    return abbrev(", ".join(f"{k} {v}" for k, v in r.as_dict().items() if v) or "nothing")
