"""Issue 15, finding 1: whoever holds the server's data (the provider, a
database thief) plus a live auth_key cannot find even a one-word passphrase
by guessing, because the master key also needs the device-made Secret Key.

The attacker here gets everything the server stores (every DynamoDB item,
S3 object and Redis value, via the zero-knowledge scan) and the auth_key the
client sent. The dictionary holds the real passphrase. Without the Secret
Key no guess matches; with it (the positive control) the same attack finds
the passphrase at once, so the attack code is able to succeed.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sealsync_client.folder import init_folder
from sealsync_client.keys import SECRET_KEY_LEN, AccountKeys, KdfParams

from chalicelib.core import tokens
from tests.client_e2e.conftest import FAST
from tests.client_e2e.test_zero_knowledge import _aws, server_side_bytes
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
WORDS = ["password", "dragon", "sunshine", "monkey", "letmein"]
WEAK = "sunshine"  # one dictionary word: strength checks waived for this test only


def stored_account(stack: StackProcess, user_id: str) -> dict[str, bytes | str]:
    """The account row exactly as the database holds it."""
    got = _aws(stack, "dynamodb").get_item(
        TableName=stack.state["table"],
        Key={"pk": {"S": f"A#{user_id}"}, "sk": {"S": "ACCOUNT"}})["Item"]
    return {"salt": got["salt"]["B"], "verifier": got["verifier"]["B"], "kdf": got["kdf"]["S"]}


def attack(row: dict[str, bytes | str], live_auth_key: str,
           secret_guess: bytes | None) -> list[str]:
    """Every dictionary word that reproduces the stored verifier or the live
    auth_key, deriving as the client does with the Secret Key guessed (or,
    with None, from the passphrase alone, as before the Secret Key)."""
    params = KdfParams.parse(row["kdf"])
    found = []
    for word in WORDS:
        if secret_guess is None:
            keys = AccountKeys(params.stretch(word), 1)
        else:
            keys = AccountKeys.from_passphrase(word, params, secret_guess)
        for candidate in (keys.auth_key(), AccountKeys(keys.master, 2).auth_key()):
            salt, verifier = row["salt"], row["verifier"]
            assert isinstance(salt, bytes) and isinstance(verifier, bytes)
            if candidate == live_auth_key or tokens.matches(salt, bytes.fromhex(candidate),
                                                            verifier):
                found.append(word)
                break
    return found


def test_a_dictionary_attack_on_the_server_data_needs_the_secret_key(
        stack: StackProcess, tmp_path: Path) -> None:
    folder = init_folder(tmp_path / "a", stack.state["api"], WEAK, device_name="a", cost=FAST,
                         min_strength=0)
    try:
        assert folder.secret_key is not None
        live = folder.api.login.auth_key if folder.api.login else ""
        assert live == folder.keys.auth_key()  # what the client sends on every token refresh
        row = stored_account(stack, folder.config.user_id)
        everything = b"".join(b for part in server_side_bytes(stack).values() for b in part)
        assert folder.secret_key.raw not in everything
        assert folder.secret_key.raw.hex().encode() not in everything

        assert attack(row, live, None) == []  # passphrase-only derivation: nothing
        assert attack(row, live, bytes(SECRET_KEY_LEN)) == []  # a guessed Secret Key: nothing
        assert attack(row, live, os.urandom(SECRET_KEY_LEN)) == []
        assert attack(row, live, folder.secret_key.raw) == [WEAK]  # the control succeeds
    finally:
        folder.close()
