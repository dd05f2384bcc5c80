"""A keychain for tests that logs every call: keyrings.alt's file keyring
(standing in for an OS keychain) plus one line per get/set/delete in
$RECORDING_KEYRING_LOG, so a test can tell whether (and when) the client
looked the keychain up. Selected with PYTHON_KEYRING_BACKEND."""
from __future__ import annotations

import os

from keyrings.alt.file import PlaintextKeyring


class RecordingKeyring(PlaintextKeyring):
    def _log(self, what: str) -> None:
        with open(os.environ["RECORDING_KEYRING_LOG"], "a") as f:
            f.write(f"{what}\n")

    def get_password(self, service: str, username: str) -> str | None:
        self._log("get")
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self._log("set")
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._log("delete")
        super().delete_password(service, username)
