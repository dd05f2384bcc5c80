"""The whole pass's progress: files and bytes done out of what the pass has
found to do so far, the rate and the time left.

The engine tells a `Meter` what it finds to do (a page of remote versions,
the push's plan) and what it finished, one file at a time. Totals grow as
the pass discovers work (the pull reads the feed a page at a time), as
rclone's do. Two displays:

* on a terminal, one `rich` progress display on stderr: the whole pass,
  with a bar of its own for each big file in flight (transfer.py's per-file
  bars, BAR_MIN_BYTES and up) in the same live display;
* under `--json`, JSON lines on stderr, `{"event": "progress", ...}`, at most
  every `interval` seconds and once at the end: stdout stays one JSON
  document.

Bytes count when a file is done (its plaintext size); a big file's own bar
shows its bytes as they go.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, TYPE_CHECKING, Any, Protocol

from .bars import Bar, NoBar, Progress

if TYPE_CHECKING:
    from .download import Version

BAR_MIN_BYTES = 4 * 1024 * 1024  # a file this big gets a bar of its own


class Meter(Protocol):
    def found(self, files: int, nbytes: int) -> None: ...
    def done(self, files: int, nbytes: int) -> None: ...


class _NoMeter:
    def found(self, files: int, nbytes: int) -> None:
        pass

    def done(self, files: int, nbytes: int) -> None:
        pass


NO_METER: Meter = _NoMeter()


def size_of(v: Version) -> int:
    """The bytes a remote version brings (a delete brings none)."""
    return 0 if v.manifest is None or v.manifest.tombstone else v.manifest.size


class Tally:
    """Thread-safe counts, and the rate and ETA they give."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.files_total = self.files_done = self.bytes_total = self.bytes_done = 0
        self.lock = threading.Lock()

    def found(self, files: int, nbytes: int) -> None:
        with self.lock:
            self.files_total += files
            self.bytes_total += nbytes
        self.changed()

    def done(self, files: int, nbytes: int) -> None:
        with self.lock:
            self.files_done += files
            self.bytes_done += nbytes
        self.changed()

    def changed(self) -> None:
        """A display's hook."""

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            elapsed = max(self.clock() - self.started, 1e-6)
            rate = self.bytes_done / elapsed
            left = self.bytes_total - self.bytes_done
            eta = round(left / rate, 1) if rate > 0 else None
            return {"event": "progress", "files_done": self.files_done,
                    "files_total": self.files_total, "bytes_done": self.bytes_done,
                    "bytes_total": self.bytes_total, "bytes_per_second": round(rate),
                    "eta_seconds": eta if left > 0 else 0.0,
                    "elapsed_seconds": round(elapsed, 1)}


class JsonLines(Tally):
    """Progress as JSON lines for GUIs and scripts."""

    def __init__(self, stream: IO[str], interval: float = 0.5) -> None:
        super().__init__()
        self.stream, self.interval, self.last = stream, interval, 0.0

    def changed(self) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.emit()

    def emit(self) -> None:
        self.stream.write(json.dumps(self.snapshot(), sort_keys=True) + "\n")
        self.stream.flush()


class Live(Tally):
    """One rich progress display: the pass, and a bar for each big file."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
        super().__init__()
        # The pass's rate and ETA are ours (bytes done over the whole pass):
        # rich's own estimate looks at recent steps, and a batch commits
        # many files in one step.
        self.view = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.fields[files]}"), DownloadColumn(),
                             TextColumn("{task.fields[rate]}"),
                             console=Console(file=stream), transient=False,
                             # the per-file lines print above the display when
                             # they share its terminal; a piped stdout is left be
                             redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)
        self.task = self.view.add_task("sync", total=None, files="0/0 files", rate="")

    def changed(self) -> None:
        from rich.filesize import decimal
        s = self.snapshot()
        eta = s["eta_seconds"]
        left = "ETA -:--:--" if eta is None else \
            f"ETA {int(eta) // 3600}:{int(eta) // 60 % 60:02}:{int(eta) % 60:02}"
        self.view.update(self.task, total=s["bytes_total"] or None, completed=s["bytes_done"],
                         files=f"{s['files_done']}/{s['files_total']} files",
                         rate=f"{decimal(s['bytes_per_second'])}/s {left}")

    def bar(self, label: str, total: int) -> AbstractContextManager[Bar]:
        if total < BAR_MIN_BYTES:
            return nullcontext(NoBar())
        return self._file_bar(label, total)

    @contextmanager
    def _file_bar(self, label: str, total: int) -> Iterator[Bar]:
        task = self.view.add_task(f"  {label}", total=total, files="", rate="")
        view = self.view

        class FileBar:
            def update(self, n_steps: int) -> None:
                view.advance(task, n_steps)
        try:
            yield FileBar()
        finally:
            self.view.remove_task(task)


@contextmanager
def pass_display(as_json: bool, stream: IO[str]) -> Iterator[tuple[Meter, Progress | None]]:
    """The meter for a pass and the per-file bars to go with it: a live
    display on a terminal, JSON lines under --json, else nothing."""
    if as_json:
        lines = JsonLines(stream)
        try:
            yield lines, None
        finally:
            lines.emit()
        return
    if not stream.isatty():
        yield NO_METER, None
        return
    live = Live(stream)
    with live.view:
        yield live, live.bar
        live.changed()
