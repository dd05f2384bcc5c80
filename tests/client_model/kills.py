"""Killing a sync pass mid-transfer, as a crash or `kill -9` would."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sealsync_client.folder import Folder


class Killed(BaseException):
    """The process died here, as by kill -9. A BaseException, so that no
    `except Exception` in the engine can swallow it."""


class KillSwitch:
    """Patches a device's Api so that its `at`-th blob transfer (`put`,
    `get`), API request (`call`) or any of them (`any`) kills the process:
    before the request is sent, or after its answer came back. Once dead,
    every request fails."""

    def __init__(self, folder: Folder, at: int, kind: str, after: bool) -> None:
        self.api = folder.api
        self.at, self.kind, self.after = at, kind, after
        self.count = 0
        self.dead = False
        self._lock = threading.Lock()
        api: Any = self.api
        send, put, get = api._send, api.put_blob, api.get_blob

        def guarded_send(*a: Any, **kw: Any) -> Any:
            if self.dead:
                raise Killed("the process is dead")
            return send(*a, **kw)

        def blob(orig: Callable[..., Any], which: str) -> Callable[..., Any]:
            def transfer(*a: Any, **kw: Any) -> Any:
                with self._lock:
                    if self.dead:
                        raise Killed("the process is dead")
                    hit = False
                    if self.kind in ("any", which):
                        self.count += 1
                        hit = self.count == self.at
                    if hit and not self.after:
                        self.dead = True
                        raise Killed(f"killed before blob transfer {self.count} ({which})")
                result = orig(*a, **kw)
                if hit:
                    self.dead = True
                    raise Killed(f"killed after blob transfer {self.count} ({which})")
                return result
            return transfer

        api._send = guarded_send
        api.put_blob = blob(put, "put")
        api.get_blob = blob(get, "get")
        api.call = blob(api.call, "call")  # API requests: a batch's create, its wait, ...

    def remove(self) -> None:
        for name in ("_send", "put_blob", "get_blob", "call"):
            self.api.__dict__.pop(name, None)
