"""A synced folder put together: config, key file, local state and API client.

`init_folder` makes a folder a Sealsync folder, either for a new account
or (`join_user_id`) as a new device of an existing one; `open_folder` opens
it with the passphrase. The master key stays in the key file; the server
only ever gets the auth key derived from it.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api import Api, AuthError, Login
from .engine import Engine
from .errors import KeyfileError, WrongPassphrase
from .keyfile import DeviceKeys, load_keyfile, save_keyfile
from .keys import DEFAULT_MEM, DEFAULT_OPS, AccountKeys, KdfParams
from .names import META_DIR
from .placing import Event
from .push import PushApi
from .state import Config, State, keyfile_path
from .transfer import Progress


@dataclass(frozen=True)
class Cost:
    """Argon2id cost for a new account and for the key file."""

    ops: int = DEFAULT_OPS
    mem: int = DEFAULT_MEM

    def params(self) -> KdfParams:
        params = KdfParams.new(self.ops, self.mem)
        params.check()  # never below the floor every client accepts
        return params


@dataclass
class Folder:
    root: Path
    config: Config
    keys: AccountKeys
    state: State
    api: Api

    def engine(self, on_event: Event | None = None, progress: Progress | None = None) -> Engine:
        return Engine(self.root, self.api, self.keys.root_keyring(), self.config.user_id,
                      self.config.device_name, self.state, on_event, progress,
                      signing_key=self.keys.signing_key(), device_id=self.config.device_id)

    def close(self) -> None:
        self.state.close()
        self.api.http.close()


def _api(server: str, state: State, login: Login | None) -> Api:
    def remember(token: str, expires_at: int) -> None:
        state.set("token", token)

    return PushApi(server, login, state.get("token"), on_token=remember)


def init_folder(root: Path, server: str, passphrase: str, *, device_name: str | None = None,
                join_user_id: str | None = None, cost: Cost | None = None,
                email: str | None = None) -> Folder:
    """Create an account (or join one) and make `root` a synced folder."""
    cost = cost or Cost()
    root = root.resolve()
    if Config.path(root).exists():
        raise KeyfileError(f"{root} is already a Sealsync folder")
    root.mkdir(parents=True, exist_ok=True)
    fresh = not (root / META_DIR).exists()
    state = State(root)
    try:
        return _init(root, server, passphrase, device_name, join_user_id, cost, state, email)
    except BaseException:
        state.close()
        if fresh:  # leave nothing half-made behind: a retry starts clean
            shutil.rmtree(root / META_DIR, ignore_errors=True)
        raise


def _init(root: Path, server: str, passphrase: str, device_name: str | None,
          join_user_id: str | None, cost: Cost, state: State,
          email: str | None = None) -> Folder:
    api = _api(server, state, None)
    if join_user_id is None:
        params = cost.params()
        keys = AccountKeys.from_passphrase(passphrase, params)
        user_id = api.create_account(keys.auth_key(), params.encode(), email)
        kdf = params.encode()
    else:
        user_id = join_user_id
        kdf = api.account_kdf(user_id)
        keys = AccountKeys.from_passphrase(passphrase, KdfParams.parse(kdf))
    try:
        device = api.add_device(user_id, keys.auth_key())
    except AuthError:
        raise WrongPassphrase(f"wrong passphrase for account {user_id}") from None
    config = Config(server.rstrip("/"), user_id, device["device_id"],
                    device_name or socket.gethostname())
    save_keyfile(keyfile_path(root), DeviceKeys(keys.master, user_id, kdf), passphrase,
                 cost.params())
    config.save(root)
    return Folder(root, config, keys, state, api)


def open_folder(root: Path, passphrase: str) -> Folder:
    """Open a synced folder; WrongPassphrase if the passphrase is wrong."""
    root = root.resolve()
    config = Config.load(root)
    device_keys = load_keyfile(keyfile_path(root), passphrase)
    if device_keys.user_id != config.user_id:
        raise KeyfileError("the key file belongs to another account than config.json")
    keys = AccountKeys(device_keys.master)
    state = State(root)
    login = Login(config.user_id, config.device_id, keys.auth_key())
    return Folder(root, config, keys, state, _api(config.server, state, login))


def watch_files(root: Path, wake: threading.Event) -> Any:
    """Set `wake` on any file system event under `root` (watchdog: inotify,
    FSEvents or ReadDirectoryChangesW), except in .sealsync/ and our own
    partial downloads, which live there. Returns the started observer (call .stop())."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    meta = (root / META_DIR).resolve()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("opened", "closed_no_write"):
                return  # reads change nothing
            for raw in (event.src_path, getattr(event, "dest_path", "") or ""):
                path = Path(os.fsdecode(raw)) if raw else None
                if path is None or path == root:
                    continue
                if path == meta or meta in path.parents:
                    continue
                wake.set()
                return

    observer = Observer()
    observer.schedule(Handler(), str(root), recursive=True)
    observer.daemon = True
    observer.start()
    return observer
