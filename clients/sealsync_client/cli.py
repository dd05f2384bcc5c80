"""`sealsync`: the desktop command line.

    sealsync init --server URL DIR [--join USER_ID] [--device NAME]
    sealsync key show DIR        the recovery kit (Secret Key); key migrate DIR (cli_key.py)
    sealsync sync DIR            one pass: pull, then push
    sealsync watch DIR           sync whenever something changes (file events + push)
    sealsync status DIR          what would be uploaded, and where the folder stands
    sealsync history DIR PATH    a file's revisions (status, history, restore: cli_files.py)
    sealsync restore DIR PATH --revision N
    sealsync devices DIR         the account's devices (cli_devices.py)
    sealsync devices revoke DIR ID
    sealsync exclude|include DIR PATH, sealsync conflicts DIR  (cli_sync_extras.py)
    sealsync forget DIR          drop the remembered key (cli_ops.py)
    sealsync service install|status|uninstall DIR   run `watch` as a user service
    sealsync usage DIR           what the account used this month, and its cost

The passphrase comes from $SEALSYNC_PASSPHRASE or a prompt, once: the
unlocked key is then remembered in the OS keychain (remember.py). On --join
the Secret Key comes from $SEALSYNC_SECRET_KEY or a prompt. `--json` prints
one JSON document for scripts. Exit codes: 0 ok, 1 sync finished with
per-file errors, 2 usage or passphrase error, 3 server unreachable, 4 other,
5 the account is read-only until its invoice is paid or while its home
region is down (nothing was lost),
130 interrupted. No traceback reaches the user (SEALSYNC_DEBUG=1 shows one).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click

from .api import Api, ApiError, HomeUnavailable, PaymentRequired, ServerForgot, ServerUnreachable
from .bars import Bar, NoBar, Progress
from .bwlimit import Limits
from .cli_devices import devices_group
from .cli_ops import (
    bwlimit_option,
    forget,
    keep,
    no_remember_option,
    open_remembered,
    reseed_and_sync,
    slot,
)
from .cli_service import recorded, service
from .engine import Report
from .errors import (
    IntegrityError,
    KdfError,
    KeyfileError,
    RevisionExpired,
    SealsyncClientError,
    UsageError,
    WrongPassphrase,
)
from .folder import Cost, Folder, init_folder, watch_files
from .kit import recovery_kit
from .names import META_DIR
from .progress import pass_display
from .push import PushApi, PushChannel
from .state import NotInitialised, StateDamaged, damaged

PASSPHRASE_ENV = "SEALSYNC_PASSPHRASE"
DEBUG_ENV = "SEALSYNC_DEBUG"
SECRET_KEY_ENV = "SEALSYNC_SECRET_KEY"


def _passphrase(confirm: bool = False) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


@contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure becomes one clear line and an exit code."""
    try:
        yield
    except (WrongPassphrase, NotInitialised, KeyfileError, KdfError, UsageError) as exc:
        _fail(str(exc), 2)
    except ServerUnreachable as exc:
        _fail(str(exc), 3)
    except (PaymentRequired, HomeUnavailable) as exc:  # read-only: nothing lost or sent
        _fail(str(exc), 5)
    except IntegrityError as exc:
        _fail(f"integrity check failed: {exc}", 4)
    except RevisionExpired as exc:
        _fail(str(exc), 7)
    except ServerForgot as exc:
        _fail(exc.advice(), 4)
    except (ApiError, SealsyncClientError) as exc:
        _fail(str(exc), 4)
    except KeyboardInterrupt:
        _fail("interrupted; the next sync carries on where this one stopped", 130)
    except click.exceptions.Abort:  # a prompt with no terminal to answer it
        _fail(f"no answer to a prompt: give the passphrase in ${PASSPHRASE_ENV} (and, to "
              f"join, the Secret Key in ${SECRET_KEY_ENV}), or run on a terminal", 2)
    except Exception as exc:  # a bug: one line for the user, the trace on request
        if os.environ.get(DEBUG_ENV):
            raise
        _fail(f"unexpected error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for "
              "the traceback, and please report it)", 4)


def _fail(message: str, code: int) -> None:
    click.echo(f"sealsync: error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _opened(folder_dir: str, remember: bool = True,
            limits: Limits | None = None) -> Iterator[Folder]:
    folder = open_remembered(Path(folder_dir), _passphrase, remember, limits)
    try:
        yield folder
    except ServerForgot as exc:
        exc.folder = folder_dir  # its advice names the folder
        raise
    except Exception as exc:  # state.db found damaged mid-way, not at open
        if damaged(exc):
            raise StateDamaged(folder.state.root / META_DIR / "state.db", exc) from None
        raise
    finally:
        folder.close()


@click.group()
@click.version_option("0.1.0", prog_name="sealsync")
def main() -> None:
    """Sealsync: end-to-end encrypted file sync."""


@main.command()
@click.option("--server", help="the Sealsync API, e.g. http://127.0.0.1:8000")
@click.option("--join", "join", metavar="USER_ID", help="add this device to an existing account")
@click.option("--pair", "pair", metavar="CODE",
              help="join by the code `sealsync key pair` shows on an enrolled device")
@click.option("--device", "device", help="this device's name (default: the host name)")
@click.option("--email", help="optional: where account mail goes (docs/ACCOUNT.md)")
@click.option("--region", help="optional: the region that holds a new account's data "
              "(one the operator offers; default: the server's own)")
@click.option("--kdf-ops", type=int, default=Cost.ops, hidden=True)
@click.option("--kdf-mem-mib", type=int, default=Cost.mem // 2**20, hidden=True)
@click.option("--reseed", is_flag=True, help="DIR is a synced folder the server lost: "
              "upload it again to a new account (or to --join one another device reseeded)")
@no_remember_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.argument("folder_dir", metavar="DIR", type=click.Path(file_okay=False))
def init(server: str | None, join: str | None, pair: str | None, device: str | None,
         email: str | None, region: str | None, kdf_ops: int, kdf_mem_mib: int,
         reseed: bool, no_remember: bool, as_json: bool, folder_dir: str) -> None:
    """Make DIR a synced folder: a new account, or --join / --pair an existing one."""
    if server is None and not reseed:
        raise click.UsageError("--server is required (except with --reseed)")
    if pair is not None and (reseed or join is not None):
        raise click.UsageError("--pair replaces --join, and cannot be used with --reseed")
    with _errors():
        cost = Cost(kdf_ops, kdf_mem_mib * 2**20)
        secret: str | None = None
        if pair is not None:  # the account and Secret Key come from an enrolled device
            assert server is not None
            join, paired = paired_account(server, pair)
            secret = paired.text()
        passphrase = _passphrase(confirm=join is None)
        if join is not None and secret is None:
            secret = os.environ.get(SECRET_KEY_ENV) or str(
                click.prompt("Secret Key (SK2-..., from the recovery kit)", hide_input=True))
        if reseed:
            folder = reseed_and_sync(Path(folder_dir), server, join, device, cost, as_json,
                                     passphrase, secret)
        else:
            assert server is not None
            folder = init_folder(Path(folder_dir), server, passphrase, device_name=device,
                                 join_user_id=join, cost=cost, secret_key=secret,
                                 email=email, region=region)
        cfg = folder.config
        if not no_remember and folder.unlocked is not None:
            keep(slot(folder.root), folder.unlocked, folder.root)
        folder.close()
        data = {"user_id": cfg.user_id, "device_id": cfg.device_id,
                "device_name": cfg.device_name, "server": cfg.server,
                "home": folder.api.base_url}
        if join is None and folder.secret_key is not None:
            data["secret_key"] = folder.secret_key.text()  # shown once; `key show` again
        text = (f"{folder.root} is now synced as device {cfg.device_name!r} of account "
                f"{cfg.user_id}.")
        if join is None and folder.secret_key is not None and not as_json:
            text += "\n\n" + recovery_kit(cfg.server, cfg.user_id, folder.secret_key).rstrip()
        _emit(as_json, data, text)


def _printer(as_json: bool) -> Callable[[str, str], None]:
    def show(kind: str, path: str) -> None:
        if not as_json:
            click.echo(f"  {kind:<17} {path}")
    return show


BAR_MIN_BYTES = 4 * 1024 * 1024
_LABELS = {"downloaded": "downloaded", "uploaded": "uploaded", "renamed": "renamed",
           "deleted_here": "deleted here", "deleted_remote": "deleted on the server",
           "conflicts": "conflict copies", "held": "not placed (ignored or excluded here)",
           "skipped": "skipped (not synced; see sealsync status)"}


def _progress(as_json: bool) -> Progress | None:
    """Progress bars on stderr for big transfers, when a person is watching."""
    if as_json or not sys.stderr.isatty():
        return None

    def bar(label: str, total: int) -> AbstractContextManager[Bar]:
        if total < BAR_MIN_BYTES:
            return nullcontext(NoBar())
        return click.progressbar(length=total, label=label, file=sys.stderr,
                                 show_pos=False, show_percent=True)
    return bar


def _summary(report: Report) -> str:
    parts = [f"{len(v)} {_LABELS[k]}" for k, v in report.as_dict().items()
             if v and k in _LABELS]
    line = "up to date" if not parts else ", ".join(parts)
    quota = report.quota_line()
    return line + (f"\n  {quota}" if quota else "") + \
        "".join(f"\n  error: {e}" for e in report.errors) + \
        "".join(f"\n  integrity check failed: {e}" for e in report.integrity)


@main.command()
@no_remember_option
@bwlimit_option
@click.option("--dry-run", is_flag=True, help="show what a pass would do; change nothing")
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def sync(no_remember: bool, bwlimit: Limits | None, dry_run: bool, as_json: bool,
         folder_dir: str) -> None:
    """One sync pass over DIR: pull remote changes, then push local ones."""
    with _errors(), _opened(folder_dir, not no_remember, bwlimit) as folder:
        if dry_run:
            cli_sync_extras.dry_run(folder, as_json)
            return
        with recorded(folder.state) as done, pass_display(as_json, sys.stderr) as (meter, bars):
            engine = folder.engine(_printer(as_json), bars)
            engine.meter = meter
            report = done(engine.sync())
        _emit(as_json, report.as_dict(), _summary(report))
        if report.integrity:  # the rest of the pass went on; this is still exit 4
            n = len(report.integrity)
            _fail(f"integrity check failed: {n} file{'s' if n != 1 else ''} not applied "
                  f"(first: {report.integrity[0]})", 4)
        if report.over_quota:  # the account's state, as 5 is: kept here, nothing lost
            sys.exit(6)
        if report.errors:
            sys.exit(1)


@main.command()
@click.option("--interval", type=int, default=300, show_default=True,
              help="seconds between safety rescans (file events and push start a pass at once)")
@click.option("--no-push", is_flag=True, help="do not use the WebSocket: long-poll only")
@no_remember_option
@bwlimit_option
@click.option("--json", "as_json", is_flag=True, help="one JSON line per pass that did work")
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def watch(interval: int, no_push: bool, no_remember: bool, bwlimit: Limits | None,
          as_json: bool, folder_dir: str) -> None:
    """Keep DIR in sync until Ctrl-C.

    Local edits are seen through file system events; remote changes arrive
    by WebSocket push (or, without one, by long-polling the change feed).
    Every pass pulls from the folder's cursor, so nothing is missed while
    disconnected. A full rescan also runs every --interval seconds."""
    with _errors(), _opened(folder_dir, not no_remember, bwlimit) as folder:
        engine = folder.engine(_printer(as_json), _progress(as_json))
        wake = threading.Event()
        channel = _push_channel(folder, wake, no_push, as_json)
        observer = watch_files(folder.root, wake)
        click.echo(f"watching {folder.root} (Ctrl-C to stop)", err=True)
        try:
            while True:
                wake.clear()
                try:
                    with recorded(folder.state) as done:  # for `sealsync service status`
                        report = done(engine.sync())
                    if report.changed or report.errors or report.over_quota \
                            or report.integrity:
                        click.echo(json.dumps(report.as_dict()) if as_json
                                   else _summary(report), nl=True)
                    channel.set_cursor(folder.state.cursor)
                except ServerUnreachable as exc:
                    click.echo(f"sealsync: {exc}; retrying", err=True)
                    wake.wait(5)
                if wake.wait(max(1, interval)):
                    time.sleep(0.2)  # let a burst of file events settle into one pass
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
        finally:
            observer.stop()
            channel.stop()


def _push_channel(folder: Folder, wake: threading.Event, no_push: bool,
                  as_json: bool) -> PushChannel:
    """Start push on its own connection and token; tell the user its state."""
    def show(state: str, detail: str) -> None:
        if state == "stopped":
            return
        click.echo(f"push: {state}" + (f" ({detail})" if detail else ""), err=True)
        if as_json:
            click.echo(json.dumps({"push": state, "detail": detail}))

    api = folder.api
    own = Api(api.base_url, api.login, api.token)
    channel = PushChannel(own, None, wake, show, discover=not no_push)
    channel.set_cursor(folder.state.cursor)
    if isinstance(api, PushApi):
        api.channel = channel
    return channel.start()


main.add_command(devices_group(_errors, _opened, _emit))
from . import cli_sync_extras  # noqa: E402  (it builds on the helpers above)
from .cli_key import key, paired_account  # noqa: E402  (it uses the helpers above)

for _command in cli_sync_extras.COMMANDS:
    main.add_command(_command)
main.add_command(forget)
main.add_command(service)
main.add_command(key)
from .cli_account import usage  # noqa: E402 - needs the helpers above

main.add_command(usage)
from . import cli_files  # noqa: E402  (status, history, restore: they use the helpers above)

for _command in cli_files.COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    main()
