"""The Secret Key's text form, the passphrase strength check, and the key
file that carries the Secret Key (pure: no server)."""
from __future__ import annotations

from pathlib import Path

import pytest
from sealsync_client.errors import KdfError
from sealsync_client.folder import init_folder
from sealsync_client.keyfile import DeviceKeys, open_keyfile, seal_keyfile
from sealsync_client.keys import AccountKeys, KdfParams
from sealsync_client.kit import join_uri, recovery_kit
from sealsync_client.secret_key import SecretKey, SecretKeyError
from sealsync_client.strength import WeakPassphrase, check_passphrase

FAST = KdfParams.new(ops=1, mem=8192)


def test_text_round_trip_ignores_case_spaces_and_dashes() -> None:
    sk = SecretKey.new()
    text = sk.text()
    assert text.startswith("SK2-") and len(text) == 4 + 4 * 9 - 1
    assert SecretKey.parse(text) == sk
    assert SecretKey.parse(text.lower().replace("-", " ")) == sk
    assert SecretKey.parse(text.removeprefix("SK2-")) == sk
    assert "SK2" not in repr(sk) and sk.raw.hex() not in repr(sk)


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],                                      # a character short
    lambda t: t + "A",                                     # a character too many
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),     # one typo: the checksum
    lambda t: t[:10] + t[11] + t[10] + t[12:],             # two swapped
    lambda t: t[:-1] + "1",                                # not in the alphabet
])
def test_a_mistyped_secret_key_is_caught_at_once(mangle: object) -> None:
    text = SecretKey(bytes(range(16))).text()
    assert callable(mangle)
    bad = mangle(text)
    if bad == text:
        pytest.skip("the swap left the text unchanged")
    with pytest.raises(SecretKeyError, match="recovery kit"):
        SecretKey.parse(bad)


def test_either_secret_alone_gives_other_keys() -> None:
    sk = SecretKey.new()
    keys = AccountKeys.from_passphrase("one two three four", FAST, sk.raw)
    assert keys.auth_key() != AccountKeys.from_passphrase(
        "one two three four", FAST, SecretKey.new().raw).auth_key()
    assert keys.auth_key() != AccountKeys.from_passphrase("one two three fiv", FAST,
                                                          sk.raw).auth_key()
    with pytest.raises(KdfError, match="Secret Key"):
        AccountKeys.from_passphrase("one two three four", FAST)


@pytest.mark.parametrize("weak", ["a", "sunshine1", "password", "qwertyuiop", "laptop2024"])
def test_weak_passphrases_are_refused_with_advice(weak: str) -> None:
    with pytest.raises(WeakPassphrase, match=r"too easy to guess \(strength [0-2]/4"):
        check_passphrase(weak, ("laptop",))


def test_a_strong_passphrase_passes() -> None:
    check_passphrase("correct horse battery staple")


def test_init_refuses_a_weak_passphrase_before_contacting_anyone(tmp_path: Path) -> None:
    with pytest.raises(WeakPassphrase):  # port 9: nothing listens; no network is tried
        init_folder(tmp_path / "x", "http://127.0.0.1:9", "sunshine")
    assert not (tmp_path / "x").exists()


def test_joining_without_the_secret_key_is_refused_before_contacting_anyone(
        tmp_path: Path) -> None:
    with pytest.raises(KdfError, match="needs its Secret Key"):
        init_folder(tmp_path / "x", "http://127.0.0.1:9", "any passphrase at all",
                    join_user_id="ab" * 16)


def test_the_key_file_keeps_the_secret_key() -> None:
    sk = SecretKey.new()
    keys = DeviceKeys(bytes(32), "ab" * 16, FAST.encode(), secret_key=sk.raw)
    opened = open_keyfile(seal_keyfile(keys, "device pass", FAST), "device pass")
    assert opened.secret_key == sk.raw and opened.master == bytes(32)
    legacy = open_keyfile(seal_keyfile(DeviceKeys(bytes(32)), "p", FAST), "p")
    assert legacy.secret_key is None  # a v1 key file still opens


def test_the_recovery_kit_names_everything_to_join_except_the_passphrase() -> None:
    sk = SecretKey.new()
    kit = recovery_kit("https://sync.example", "ab" * 16, sk)
    assert sk.text() in kit and "ab" * 16 in kit and "https://sync.example" in kit
    assert "\u2580" in kit or "\u2584" in kit or "\u2588" in kit  # the QR code's blocks
    assert join_uri("https://sync.example", "ab" * 16, sk).endswith(sk.text())
