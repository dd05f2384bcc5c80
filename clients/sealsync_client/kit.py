"""The recovery kit: what a person prints or writes down once, at sign-up.

It names the server, the account and the Secret Key, and carries them in a
QR code for the next device's camera or scanner (segno, drawn with Unicode
block characters in the terminal). It never holds the passphrase: the kit
and the passphrase are the two halves, kept apart.
"""
from __future__ import annotations

import io
from urllib.parse import quote

from .secret_key import SecretKey


def join_uri(server: str, user_id: str, secret: SecretKey) -> str:
    """What the QR code holds: enough to join, except the passphrase."""
    return f"sealsync:join?server={quote(server, safe='')}&user={user_id}&sk={secret.text()}"


def qr_text(data: str) -> str:
    """`data` as a QR code of Unicode half blocks (two modules per character row)."""
    import segno  # loaded only when a kit is shown

    out = io.StringIO()
    segno.make(data, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def recovery_kit(server: str, user_id: str, secret: SecretKey, qr: bool = True) -> str:
    lines = [
        "=== Sealsync recovery kit: print it or write it down, keep it safe ===",
        f"  Server:     {server}",
        f"  Account:    {user_id}",
        f"  Secret Key: {secret.text()}",
        "",
        "  A new device needs this Secret Key AND your passphrase:",
        f"    sealsync init --server {server} --join {user_id} DIR",
        "  Without the Secret Key, your files cannot be recovered by anyone, the",
        "  server included, unless a device that is still set up shows it again",
        "  (sealsync key show DIR). Keep the passphrase somewhere else.",
    ]
    text = "\n".join(lines) + "\n"
    return text + qr_text(join_uri(server, user_id, secret)) if qr else text
