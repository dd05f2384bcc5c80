"""The Secret Key: 128 random bits made on the first device, the second secret.

It is mixed with the stretched passphrase into the master key (keys.py), so
a passphrase guess is worth nothing without it, and it never leaves the
user's devices except on the recovery kit the user prints or writes down.

Its text form is what a person copies by hand, so it is built for that:

    SK2-XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX

32 characters of RFC 4648 base32 (A-Z, 2-7: no 0/1/8/9 to confuse with
O/I/B/g) encode 20 bytes: the 16-byte key and a 4-byte BLAKE2b checksum, so
a mistyped character is caught at once ("check the Secret Key") instead of
surfacing later as a wrong passphrase. Parsing ignores case, spaces and
dashes; characters outside the alphabet (0, 1, 8, 9) are refused rather
than guessed.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Final

from . import crypto
from .errors import KdfError
from .keys import SECRET_KEY_LEN

PREFIX: Final = "SK2"
_CHECK_LEN: Final = 4
_PERSON: Final = b"sealsync:sk:v2"
_TEXT_LEN: Final = 32


class SecretKeyError(KdfError):
    """The Secret Key as typed is not one (wrong length, typo, bad checksum)."""


def _check(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=_CHECK_LEN, person=_PERSON).digest()


@dataclass(frozen=True, repr=False, eq=False)
class SecretKey:
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != SECRET_KEY_LEN:
            raise ValueError(f"a Secret Key is {SECRET_KEY_LEN} bytes")

    @classmethod
    def new(cls, rand: crypto.Random = os.urandom) -> SecretKey:
        return cls(rand(SECRET_KEY_LEN))

    def text(self) -> str:
        """The form a person reads, writes down and types on a new device."""
        body = base64.b32encode(self.raw + _check(self.raw)).decode()
        return "-".join([PREFIX, *(body[i:i + 8] for i in range(0, _TEXT_LEN, 8))])

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        """Read a typed Secret Key; SecretKeyError with a hint if it is not one."""
        compact = "".join(text.split()).replace("-", "").upper()
        if compact.startswith(PREFIX):
            compact = compact[len(PREFIX):]
        if len(compact) != _TEXT_LEN:
            raise SecretKeyError(f"a Secret Key has {_TEXT_LEN} letters and digits after "
                                 f"{PREFIX}- (found {len(compact)}): check the recovery kit")
        try:
            data = base64.b32decode(compact)
        except ValueError:
            raise SecretKeyError("a Secret Key uses only the letters A-Z and digits 2-7: "
                                 "check the recovery kit") from None
        raw, check = data[:SECRET_KEY_LEN], data[SECRET_KEY_LEN:]
        if not hmac.compare_digest(check, _check(raw)):
            raise SecretKeyError("that Secret Key has a typo (its checksum does not match): "
                                 "check the recovery kit")
        return cls(raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and hmac.compare_digest(self.raw, other.raw)

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:  # never print key material (invariant 6)
        return "SecretKey(<secret>)"
