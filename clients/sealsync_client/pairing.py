"""Pairing: a new device gets the account and Secret Key from an enrolled
one by a short code, instead of the user typing the Secret Key.

    enrolled device (sealsync key pair DIR)        new device (sealsync init --pair CODE)
    pw = 6 random digits; SPAKE2_A(pw) -> msg_a
    POST /v1/pairings {msg_a} -> pairing id
    shows CODE = "XXXX-XXXX-123456"                  types CODE; SPAKE2_B(pw) -> msg_b
                                                     POST /v1/pairings/{id}/join {msg_b}
                                                       -> msg_a, user id
    polls GET /v1/pairings/{id} -> msg_b             K = finish(msg_a)
    K = finish(msg_b); box = seal(K, {user, Secret Key})
    POST /v1/pairings/{id}/box {box}                 polls GET /v1/pairings/{id}/box -> box
                                                     opens it with K; then asks the passphrase

Why it is safe (docs/SECURITY.md): SPAKE2 (the `spake2` package) lets the
two sides agree on K from the 6 digits without revealing them. Whoever
relays or joins without the digits, the server included, gets exactly one
online guess per code, since the server's mailbox takes one join and
expires in 5 minutes, and nothing to test guesses against offline. A
wrong guess only makes a box the guesser cannot open; the real device's
join then fails ("already used") and the user makes a new code. The box
carries the Secret Key, never the passphrase: the new device still needs
it, as with the recovery kit.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import crypto
from .api import Api, ApiError, NotFound
from .errors import IntegrityError, SealsyncClientError
from .secret_key import SecretKey

_ID_A, _ID_B = b"sealsync pairing: enrolled device", b"sealsync pairing: new device"
_CODE = re.compile(r"([23456789ABCDEFGHJKMNPQRSTVWXYZ]{4})-?([23456789ABCDEFGHJKMNPQRSTVWXYZ]{4})"
                   r"-?([0-9]{6})")
POLL_S = 1.0
WAIT_S = 300.0


class PairingError(SealsyncClientError):
    """The pairing did not complete (expired, used, or the code was wrong)."""


@dataclass(frozen=True, repr=False)
class Paired:
    """What the new device learns: the account and its Secret Key."""

    user_id: str
    secret_key: SecretKey


def _box_key(spake_key: bytes, pairing_id: str) -> bytes:
    return crypto.derive(spake_key, b"sealsync:pairing:v1", pairing_id.encode())


def _context(pairing_id: str) -> bytes:
    return b"sealsync pairing " + pairing_id.encode()


def parse_code(code: str) -> tuple[str, bytes]:
    """(pairing id, password) from a typed code; spaces and case ignored."""
    match = _CODE.fullmatch("".join(code.split()).upper())
    if match is None:
        raise PairingError("a pairing code looks like ABCD-EFGH-123456 (from `sealsync key "
                           "pair` on an enrolled device)")
    return match[1] + match[2], match[3].encode()


def offer(api: Api, user_id: str, secret: SecretKey, show: Callable[[str], None],
          wait_s: float = WAIT_S, poll_s: float = POLL_S) -> None:
    """The enrolled device's side: show a code, wait for the new device,
    hand it the Secret Key sealed under the key SPAKE2 agreed."""
    from spake2 import SPAKE2_A

    password = f"{secrets.randbelow(10**6):06d}".encode()
    side = SPAKE2_A(password, idA=_ID_A, idB=_ID_B)
    msg_a = side.start()
    pairing_id = str(api.call("POST", "/v1/pairings",
                              {"msg": base64.b64encode(msg_a).decode()})["pairing_id"])
    show(f"{pairing_id[:4]}-{pairing_id[4:]}-{password.decode()}")
    deadline = time.monotonic() + wait_s
    while True:
        got = api.call("GET", f"/v1/pairings/{pairing_id}")["msg"]
        if got:
            break
        if time.monotonic() > deadline:
            raise PairingError("no device used the code in time: run `sealsync key pair` again")
        time.sleep(poll_s)
    key = _box_key(side.finish(base64.b64decode(got)), pairing_id)
    payload = json.dumps({"user_id": user_id, "secret_key": secret.raw.hex()}).encode()
    box = crypto.seal(key, crypto.KIND_PAIRING, payload, _context(pairing_id))
    api.call("POST", f"/v1/pairings/{pairing_id}/box",
             {"box": base64.b64encode(box).decode()})


def accept(api: Api, code: str, wait_s: float = 60.0, poll_s: float = POLL_S) -> Paired:
    """The new device's side: join with the code, open the box."""
    from spake2 import SPAKE2_B

    pairing_id, password = parse_code(code)
    side = SPAKE2_B(password, idA=_ID_A, idB=_ID_B)
    msg_b = side.start()
    try:
        joined = api.call("POST", f"/v1/pairings/{pairing_id}/join",
                          {"msg": base64.b64encode(msg_b).decode()}, auth=False)
    except NotFound:
        raise PairingError("no such pairing code (codes last 5 minutes): make a new one with "
                           "`sealsync key pair` on an enrolled device") from None
    except ApiError as exc:
        if exc.status != 409:
            raise
        raise PairingError("that pairing code was already used: make a new one") from None
    try:
        key = _box_key(side.finish(base64.b64decode(joined["msg"])), pairing_id)
    except Exception as exc:  # spake2 raises its own errors on a malformed message
        raise PairingError("the enrolled device's pairing message is malformed") from exc
    deadline = time.monotonic() + wait_s
    while True:
        box = api.call("GET", f"/v1/pairings/{pairing_id}/box", auth=False)["box"]
        if box:
            break
        if time.monotonic() > deadline:
            raise PairingError("the enrolled device did not answer in time")
        time.sleep(poll_s)
    try:
        data = json.loads(crypto.open_sealed(key, crypto.KIND_PAIRING, base64.b64decode(box),
                                             _context(pairing_id)))
        paired = Paired(str(data["user_id"]), SecretKey(bytes.fromhex(data["secret_key"])))
    except (IntegrityError, ValueError, KeyError, TypeError) as exc:
        raise PairingError("the pairing failed: the code was mistyped, or someone else "
                           "used it first; make a new code") from exc
    if paired.user_id != joined.get("user_id"):  # the box (authenticated) is what counts
        raise PairingError("the server named another account than the enrolled device did")
    return paired
