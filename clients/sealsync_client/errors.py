"""The client's errors: one root, and one class for every integrity failure.

Like Fernet's `InvalidToken`, `IntegrityError` never says *which* check
failed (wrong key, tampered byte, moved or replayed object, bad padding):
a server probing the client learns nothing from the error, and callers
have exactly one thing to catch.
"""
from __future__ import annotations


class SealsyncClientError(Exception):
    """Root of every error the Sealsync client raises on purpose."""


class IntegrityError(SealsyncClientError):
    """This data failed verification and was discarded.

    It was corrupted, tampered with, moved to another place, replayed from an
    older version, or sealed under other keys. Nothing from it was returned.
    """

    def __init__(self, message: str = "data failed integrity verification "
                                      "(tampered, moved, replayed or wrong key)") -> None:
        super().__init__(message)


class CannotRead(SealsyncClientError):
    """A local file could not be read for its upload; the next sync retries it."""


class WrongPassphrase(SealsyncClientError):
    """The passphrase does not open this key file (or the file is damaged)."""

    def __init__(self, message: str = "wrong passphrase, or the key file is damaged") -> None:
        super().__init__(message)


class KeyfileError(SealsyncClientError):
    """The key file cannot be used as it is (missing, unsafe permissions, unknown format)."""


class UsageError(SealsyncClientError):
    """The command or its settings cannot work as given (e.g. an insecure server URL)."""


class KdfError(SealsyncClientError):
    """The account's `kdf` string is malformed or asks for unsafe parameters.

    A server that serves weakened Argon2id parameters could turn the auth key
    the client then sends into a cheap offline passphrase-guessing oracle, so
    the client refuses them instead of deriving anything.
    """


class HistoryError(IntegrityError):
    """The server's history contradicts what this device has already verified.

    Every version and its place in the account's history is signed by the
    account's key (docs/FORMAT.md section 9), so a server cannot forge one;
    it can only hide, repeat, reorder or roll back what it serves, or show
    devices different histories. This device noticed and applied nothing.
    Unlike other integrity failures, the message says what was seen: it is
    about the server's behaviour, not about any secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message + " (the server is misbehaving: nothing was applied; "
                                   "compare devices and contact the server's operator)")


class RollbackError(HistoryError):
    """The server offered an older version than one this device has verified."""


class ForkError(HistoryError):
    """The server showed this device a history that another device's signed
    commits contradict: two devices were shown different histories."""


class FeedError(HistoryError):
    """The change feed dropped, repeated, reordered or rewrote entries, or
    reported a change that no device signed."""


class DeviceCloned(IntegrityError):
    """Two versions signed by one device with one counter: only holders of
    the account key can sign, so the server did not make them; two copies
    of one device's folder (a `.sealsync/` copied to another machine) did.
    Not a HistoryError on purpose: refusing that one feed entry (and
    skipping it loudly, engine_pull.py) keeps every other device syncing,
    where stopping the pass wedged them all for good. The copies themselves
    stop on their own check (`OwnPastUnknown`) with the advice to re-join."""


class RevisionExpired(SealsyncClientError):
    """The revision was superseded (or the file deleted) longer ago than the
    server's retention window: its content is gone, only its signed record
    stays (`sealsync history` marks it expired). `restore` exits 7."""
