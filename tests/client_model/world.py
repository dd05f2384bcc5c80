"""What the client state machine acts on: 2 or 3 devices of one fresh
account, each a real folder synced by the real engine against the local
stack, plus the model (every content a sync could see) and the checks.

File system operations take paths as bytes (os.fsencode), so a name that
is not UTF-8 is written as the user's own bytes; Python shows it as a str
with surrogate escapes. Every operation returns a short description, or
None when it had nothing to act on (a missing file, a parent that is a
file...): the rule was then idle.

The name pool and the rules of what a device holds are in pool.py; the
checks, and the one place a violation is raised from, in checks.py.
"""
from __future__ import annotations

import os
import random
import shutil
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import note
from sealsync_client.engine import Report
from sealsync_client.folder import Folder, init_folder, open_folder

from tests.client_e2e.conftest import FAST, PASSPHRASE
from tests.client_model.checks import (
    brief,
    check_converged,
    check_errors,
    digest,
    fail,
    scan,
    short,
    show,
)
from tests.client_model.conftest import Stats
from tests.client_model.kills import Killed, KillSwitch
from tests.client_model.pool import EXCLUDED, EXCLUDING, ignored_name, in_excluded


def bpath(root: Path, rel: str) -> bytes:
    return os.fsencode(root) + b"/" + os.fsencode(rel)



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

    def sync(self, dev: Device) -> Report:
        self.track(self.seen(dev))
        report = self._pass(dev)
        note(f"  {dev.name} synced: {brief(report)}")
        check_errors(dev, report)
        return report

    def sync_together(self, a: Device, b: Device) -> None:
        """Two passes at the same moment: their uploads race at the server."""
        self.track(self.seen(a))
        self.track(self.seen(b))
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(self._pass, d) for d in (a, b)]
            reports = [f.result() for f in futures]
        for d, r in zip((a, b), reports, strict=True):
            note(f"  {d.name} synced: {brief(r)}")
            check_errors(d, r)

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
        note(f"  {dev.name} synced (the kill never fired): {brief(report)}")
        check_errors(dev, report)
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
                 f"{[brief(r) for r in reports]}")
        check_converged(self)
