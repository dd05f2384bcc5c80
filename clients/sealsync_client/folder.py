"""A synced folder put together: config, key file, local state and API client.

`init_folder` makes a folder a Sealsync folder, either for a new account
(with a fresh Secret Key) or (`join_user_id` + the Secret Key) as a new
device of an existing one; `open_folder` opens it with the passphrase. The
master key and the Secret Key stay in the key file; the server only ever
gets the auth key derived from them.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .api import Api, AuthError, Login, check_server_url
from .bars import Progress
from .devices import DeviceKey, load_device_key, save_device_key, seal_name
from .engine import Engine
from .errors import KdfError, KeyfileError, WrongPassphrase
from .keyfile import DeviceKeys, load_keyfile, save_keyfile
from .keys import DEFAULT_MEM, DEFAULT_OPS, SAFE_LIMITS, AccountKeys, KdfLimits, KdfParams
from .known_chunks import KnownChunks
from .names import META_DIR
from .placing import Event
from .push import PushApi
from .remember import mark_not_kept
from .resume import SentChunks
from .secret_key import SecretKey
from .state import Config, State, device_key_path, keyfile_path, meta_dir
from .strength import MIN_SCORE, check_passphrase

SENT_CHUNKS = "sent-chunks"  # the upload resume journal (resume.py)
KNOWN_CHUNKS = "known-chunks"  # each file's last stored chunk ids (known_chunks.py)


@dataclass(frozen=True)
class Cost:
    """Argon2id cost for a new account and for the key file."""

    ops: int = DEFAULT_OPS
    mem: int = DEFAULT_MEM

    def params(self) -> KdfParams:
        params = KdfParams.new(self.ops, self.mem)
        params.check()  # never below the floor every client accepts
        return params

    def join_limits(self) -> KdfLimits:
        """On join, the server supplies the account's parameters: refuse any
        below what this client would choose for a new account, so a hostile
        server cannot hand out a cheaper cost than the account was made with."""
        return KdfLimits(min_ops=self.ops, min_mem=self.mem, max_ops=SAFE_LIMITS.max_ops,
                         max_mem=SAFE_LIMITS.max_mem)


@dataclass
class Folder:
    root: Path
    config: Config
    keys: AccountKeys
    state: State
    api: Api
    unlocked: DeviceKeys | None = None  # what the key file held: what remember.py keeps
    secret_key: SecretKey | None = None  # None: a kdf v1 account (sealsync key migrate)
    device_key: DeviceKey | None = None  # signs what this device uploads (devices.py)

    def engine(self, on_event: Event | None = None, progress: Progress | None = None) -> Engine:
        engine = Engine(self.root, self.api, self.keys.root_keyring(), self.config.user_id,
                        self.config.device_name, self.state, on_event, progress,
                        signing_key=self.keys.signing_key(), device_id=self.config.device_id,
                        device_key=self.device_key)
        engine.transfer.sent = SentChunks(meta_dir(self.root) / SENT_CHUNKS)
        engine.transfer.known = KnownChunks(meta_dir(self.root) / KNOWN_CHUNKS)
        return engine

    def close(self) -> None:
        self.state.close()
        self.api.http.close()


def _api(server: str, state: State, login: Login | None) -> Api:
    """The folder's API client: at the account's home region once a server
    has named it (421; kept in state.db), else at `server`."""
    def remember(token: str, expires_at: int) -> None:
        state.set("token", token)

    def moved(home: str) -> None:
        state.set("home", home)

    return PushApi(state.get("home") or server, login, state.get("token"),
                   on_token=remember, origin_url=server, on_home=moved)


def init_folder(root: Path, server: str, passphrase: str, *, device_name: str | None = None,
                join_user_id: str | None = None, cost: Cost | None = None,
                secret_key: SecretKey | str | None = None,
                min_strength: int = MIN_SCORE, email: str | None = None,
                region: str | None = None) -> Folder:
    """Create an account (or join one with its Secret Key) and make `root` a
    synced folder. A new account's passphrase must pass the strength check
    (strength.py); the Secret Key is made here and kept in the key file.
    `email` (optional, new accounts only) is where account mail goes;
    `region` (optional, new accounts only) the home region holding its data."""
    cost = cost or Cost()
    check_server_url(server)
    if join_user_id is None:
        check_passphrase(passphrase, (server, device_name or ""), min_strength)
        secret = SecretKey.new()
    elif secret_key is None:
        raise KdfError("joining an account needs its Secret Key (SK2-...) from the recovery "
                       "kit or `sealsync key show` on an enrolled device")
    else:
        secret = SecretKey.parse(secret_key) if isinstance(secret_key, str) else secret_key
    root = root.resolve()
    if Config.path(root).exists():
        raise KeyfileError(f"{root} is already a Sealsync folder")
    root.mkdir(parents=True, exist_ok=True)
    fresh = not (root / META_DIR).exists()
    state = State(root)
    try:
        return _init(root, server, passphrase, device_name, join_user_id, cost, state, secret,
                     email, region)
    except BaseException:
        state.close()
        if fresh:  # leave nothing half-made behind: a retry starts clean
            shutil.rmtree(root / META_DIR, ignore_errors=True)
        raise


def _init(root: Path, server: str, passphrase: str, device_name: str | None,
          join_user_id: str | None, cost: Cost, state: State, secret: SecretKey,
          email: str | None = None, region: str | None = None) -> Folder:
    api = _api(server, state, None)
    if join_user_id is None:
        params = cost.params()
        keys = AccountKeys.from_passphrase(passphrase, params, secret.raw)
        public = bytes(keys.signing_key().verify_key).hex()
        user_id = api.create_account(keys.auth_key(), params.encode(), public, email, region)
        kdf = params.encode()
    else:
        user_id = join_user_id
        kdf = api.account_kdf(user_id)
        params = KdfParams.parse(kdf, cost.join_limits())
        if params.version < 2:  # else a hostile server could downgrade us to an oracle
            raise KdfError(f"account {user_id} was made before Secret Keys: run "
                           "`sealsync key migrate DIR` on one of its devices first")
        keys = AccountKeys.from_passphrase(passphrase, params, secret.raw)
    name = device_name or socket.gethostname()
    device_key = _enrol(api, keys, user_id, name)
    config = Config(server.rstrip("/"), user_id, device_key.device_id, name)
    unlocked = DeviceKeys(keys.master, user_id, kdf, secret_key=secret.raw)
    save_keyfile(keyfile_path(root), unlocked, passphrase, cost.params())
    save_device_key(device_key_path(root), keys.master, device_key)
    config.save(root)
    mark_not_kept(meta_dir(root))  # nothing kept yet: `sealsync init` keeps it (cli.py)
    return Folder(root, config, keys, state, api, unlocked, secret, device_key)


def _enrol(api: Api, keys: AccountKeys, user_id: str, name: str) -> DeviceKey:
    """Register a new device id and key, vouched for by the account key,
    its name sealed (the server never sees it)."""
    device_key = DeviceKey.new(user_id, secrets.token_hex(16))
    enrolment = {**device_key.enrolment(keys.signing_key()),
                 "name": seal_name(keys.master, user_id, device_key.device_id, name)}
    try:
        api.add_device(user_id, keys.auth_key(), enrolment)
    except AuthError:
        raise WrongPassphrase(f"wrong passphrase or Secret Key for account {user_id}") from None
    return device_key


def unlock(root: Path, passphrase: str) -> DeviceKeys:
    """The folder's keys, opened from its key file with the passphrase
    (Argon2id: the slow step a remembered key skips, remember.py)."""
    return load_keyfile(keyfile_path(root.resolve()), passphrase)


def open_folder(root: Path, passphrase: str) -> Folder:
    """Open a synced folder; WrongPassphrase if the passphrase is wrong."""
    return open_unlocked(root, unlock(root, passphrase))


def open_unlocked(root: Path, device_keys: DeviceKeys) -> Folder:
    """Open a synced folder with keys already unlocked."""
    root = root.resolve()
    config = Config.load(root)
    if device_keys.user_id != config.user_id:
        raise KeyfileError("the key file belongs to another account than config.json")
    secret = device_keys.secret_key
    keys = AccountKeys(device_keys.master, 1 if secret is None else 2)
    state = State(root)
    device_key = load_device_key(device_key_path(root), keys.master, config.user_id,
                                 config.device_id)
    if device_key is None:  # a folder from before device keys (docs/CLIENT.md)
        config, device_key = _migrate(root, config, keys, state)
    login = Login(config.user_id, config.device_id, keys.auth_key())
    return Folder(root, config, keys, state, _api(config.server, state, login), device_keys,
                  None if secret is None else SecretKey(secret), device_key)


def _migrate(root: Path, config: Config, keys: AccountKeys,
             state: State) -> tuple[Config, DeviceKey]:
    """Enrol this folder again as a device with a key (the old device id had
    none, so the server lets it read but never write); the old id can then be
    revoked with `sealsync devices revoke`. The history keeps working: this
    device's old versions verify as another device's."""
    api = _api(config.server, state, None)
    try:
        device_key = _enrol(api, keys, config.user_id, config.device_name)
    finally:
        api.http.close()
    save_device_key(device_key_path(root), keys.master, device_key)
    config = replace(config, device_id=device_key.device_id)
    config.save(root)  # add_device stored the new device's token in state.db
    return config, device_key


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
