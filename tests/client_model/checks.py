"""The model's checks (docs/TESTING.md "The checks"): what a pass may
report, convergence, nothing lost, no leftovers; and the one place every
violation is raised from. Devices' folders are read here as bytes
(os.fsencode), so a name that is not UTF-8 is seen as the user wrote it.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sealsync_client.download import Version
from sealsync_client.engine import Report
from sealsync_client.folder import Folder
from sealsync_client.manifest import ManifestPlace, open_manifest

from tests.client_e2e.test_two_devices import every_revision
from tests.client_model.pool import EXCLUDED, EXCLUDING, ignored_name, in_excluded, stored_name

if TYPE_CHECKING:
    from tests.client_model.world import Device, World

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


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()



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


def check_errors(dev: Device, report: Report) -> None:
    bad = [e for e in report.errors if not any(p.search(e) for p in ALLOWED_ERRORS)]
    if bad:
        fail(f"check 3: {dev.name}'s pass reported errors no rule allows: {bad}")
    if dev.index == EXCLUDING and any(in_excluded(p) for p in report.downloaded):
        fail(f"check 1b: {dev.name} downloaded into its excluded {EXCLUDED}: "
             f"{report.downloaded}")


def stored_tree(dev: Device) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for rel, data in scan(dev.root)[0].items():
        name = stored_name(rel)
        if name in out:
            fail(f"check 1: two files on {dev.name} store as one name {name!r}:"
                 f" {[r for r in scan(dev.root)[0] if stored_name(r) == name]}")
        out[name] = data
    return out


def check_converged(world: World) -> None:
    trees = [stored_tree(d) for d in world.devices]
    # 4. no partial file left, nothing in .sealsync/tmp
    for d, t in zip(world.devices, trees, strict=True):
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
    check_excluded(world.devices, trees)
    for d, t in zip(world.devices[1:], trees[1:], strict=True):
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
    here = {digest(data) for d in world.devices for data in scan(d.root)[0].values()}
    missing = {k: v for k, v in world.written.items() if k not in here}
    if missing:
        stored = {digest(data) for data in every_stored_version(world.devices[0].folder,
                                                                 world.base / "versions")}
        lost = [v for k, v in missing.items() if k not in stored]
        if lost:
            fail(f"check 2: content lost (in no folder, not on the server): "
                 f"{lost}")


def check_excluded(devices: list[Device], trees: list[dict[str, bytes]]) -> None:
    """1b. Outside the excluded subtree, the excluding device holds what
    the others hold (check_errors sees that nothing is downloaded into it)."""
    if EXCLUDING not in range(len(devices)):
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


def brief(r: Report) -> str:
    return abbrev(", ".join(f"{k} {v}" for k, v in r.as_dict().items() if v) or "nothing")
