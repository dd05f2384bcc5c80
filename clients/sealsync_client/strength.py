"""Passphrase strength: refuse passphrases a guesser would find quickly.

zxcvbn (Dropbox's estimator) scores a passphrase 0-4 from the guesses a
smart attacker needs: dictionaries, names, keyboard walks, l33t, dates and
repeats. We ask for 3 ("safely unguessable": about 10^8 guesses online,
more with Argon2id offline) and say why a weaker one is refused. The
Secret Key already stops offline guessing by whoever holds the server's
data; the passphrase still guards the key file on a stolen device.
"""
from __future__ import annotations

from typing import Final

from .errors import KdfError

MIN_SCORE: Final = 3


class WeakPassphrase(KdfError):
    """The passphrase is too easy to guess; the message says how to do better."""


def check_passphrase(passphrase: str, context: tuple[str, ...] = (),
                     min_score: int = MIN_SCORE) -> None:
    """Raise WeakPassphrase unless zxcvbn scores `passphrase` at least
    `min_score`; `context` (server, device name) counts as known words."""
    from zxcvbn import zxcvbn  # loaded only when a passphrase is being chosen

    result = zxcvbn(passphrase[:100], user_inputs=list(context))  # zxcvbn is slow on huge input
    if result["score"] >= min_score:
        return
    feedback = result.get("feedback") or {}
    hints = [str(feedback.get("warning") or "")] + [str(s) for s in feedback.get("suggestions")
                                                   or []]
    hint = " ".join(h.rstrip(".") + "." for h in hints if h)
    raise WeakPassphrase(
        f"that passphrase is too easy to guess (strength {result['score']}/4, at least "
        f"{min_score} needed). {hint or 'Use four or more uncommon words.'}".rstrip())
