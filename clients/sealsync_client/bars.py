"""The progress-bar port a transfer reports its bytes to.

Kept apart so that uploads (transfer.py), downloads (download.py) and the
displays that implement it (progress.py, cli.py) share one definition
without importing one another.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol


class Bar(Protocol):
    def update(self, n_steps: int) -> None: ...


class NoBar:
    def update(self, n_steps: int) -> None:
        pass


Progress = Callable[[str, int], AbstractContextManager[Bar]]
"""(label, total bytes) -> a progress bar (click.progressbar fits)."""
