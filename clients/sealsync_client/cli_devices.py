"""`sealsync devices DIR` and `sealsync devices revoke DIR ID`.

The server keeps each device's name sealed (devices.py): this lists them
opened with the account's keys. Revoking signs the request with the
account key, so only someone with the passphrase can revoke a device; the
revoked device's uploads stop at once, its reads within the server's
authorizer cache (60 s; docs/DESIGN.md).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import click

from .devices import open_name, revoke_message
from .errors import SealsyncClientError
from .folder import Folder


class NoSuchDevice(SealsyncClientError):
    """The id names no device of this account (or more than one)."""


class _ListByDefault(click.Group):
    """`sealsync devices DIR` lists; `sealsync devices revoke DIR ID` revokes."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def listed(folder: Folder) -> list[dict[str, Any]]:
    """The account's devices, names opened, oldest first."""
    out = []
    for d in folder.api.devices():
        name = open_name(folder.keys.master, folder.config.user_id, d["device_id"],
                         d.get("name") or "") if d.get("name") else None
        out.append({**d, "name": name})
    return out


def _when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) if epoch else "-"


def show(rows: list[dict[str, Any]]) -> str:
    lines = []
    for d in rows:
        state = f"revoked {_when(d['revoked_at'])}" if d["revoked_at"] else \
            "active" if d["can_write"] else "read-only (enrolled before device keys)"
        mark = "*" if d["current"] else " "
        lines.append(f"{mark} {d['device_id']}  {d['name'] or '(no name)':<24} "
                     f"enrolled {_when(d['created'])}  {state}")
    return "\n".join(lines + ["(* this device)"])


def find(rows: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """The device a full id or a unique prefix (at least 4 digits) names."""
    hits = [d for d in rows if d["device_id"] == wanted
            or len(wanted) >= 4 and d["device_id"].startswith(wanted.lower())]
    if len(hits) != 1:
        raise NoSuchDevice(f"{wanted!r} names {'no' if not hits else 'more than one'} device "
                           "of this account: see `sealsync devices DIR`")
    return hits[0]


def revoke(folder: Folder, wanted: str) -> dict[str, Any]:
    """Revoke a device with the account key's signature; its row after."""
    device = find(listed(folder), wanted)
    message = revoke_message(folder.config.user_id, device["device_id"])
    signature = bytes(folder.keys.signing_key().sign(message).signature).hex()
    got = folder.api.revoke_device(device["device_id"], signature)
    return {**device, "revoked_at": got.get("revoked_at"), "can_write": False}


Opened = Callable[[str], AbstractContextManager[Folder]]
Errors = Callable[[], AbstractContextManager[None]]
Emit = Callable[[bool, dict[str, Any], str], None]


def devices_group(errors: Errors, opened: Opened, emit: Emit) -> click.Group:
    """The `devices` commands, wired to cli.py's error handling and output."""

    @click.group(cls=_ListByDefault)
    def devices() -> None:
        """The account's devices: list them, or revoke one."""

    @devices.command("list")
    @click.option("--json", "as_json", is_flag=True)
    @click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
    def list_devices(as_json: bool, folder_dir: str) -> None:
        """Every device of DIR's account (`sealsync devices DIR`)."""
        with errors(), opened(folder_dir) as folder:
            rows = listed(folder)
            emit(as_json, {"devices": rows}, show(rows))

    @devices.command("revoke")
    @click.option("--json", "as_json", is_flag=True)
    @click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
    @click.argument("device_id", metavar="ID")
    def revoke_device(as_json: bool, folder_dir: str, device_id: str) -> None:
        """Revoke device ID (or a unique prefix of it): its uploads stop at
        once, its reads within a minute. It cannot be enrolled again."""
        with errors(), opened(folder_dir) as folder:
            row = revoke(folder, device_id)
            own = " (this device: it can no longer upload)" if row["current"] else ""
            emit(as_json, row, f"revoked {row['device_id']} "
                               f"{row['name'] or '(no name)'}{own}")

    return devices
