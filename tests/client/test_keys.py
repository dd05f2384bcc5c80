"""The key hierarchy, the kdf string, and the envelope's primitives."""
from __future__ import annotations

import itertools
import os

import pytest
from sealsync_client import AccountKeys, IntegrityError, KdfError, KdfParams, Keyring, crypto
from sealsync_client.keys import ROOT_KEYRING_ID, SAFE_LIMITS

from .vectors_gen import TEST_LIMITS

KEYS = AccountKeys(bytes(range(32)))


def test_every_purpose_gets_its_own_key() -> None:
    root = KEYS.root_keyring()
    folder = Keyring.from_folder_key(KEYS.root_folder_key(), b"\x01" * 16)
    keys = [KEYS.master, bytes.fromhex(KEYS.auth_key()), KEYS.signing_key().encode(),
            KEYS.root_folder_key(), root.content, root.chunk_id, root.chunker, root.manifest,
            folder.content, folder.chunk_id, folder.chunker, folder.manifest]
    assert len(set(keys)) == len(keys)
    assert root.keyring_id == ROOT_KEYRING_ID


def test_the_auth_key_is_what_the_server_expects() -> None:
    auth = KEYS.auth_key()
    assert len(auth) == 64 and auth == auth.lower() and bytes.fromhex(auth)


def test_secrets_never_show_in_reprs() -> None:
    ring = KEYS.root_keyring()
    for obj in (KEYS, ring):
        text = repr(obj) + str(obj)
        for secret in (KEYS.master, ring.content, ring.manifest):
            assert secret.hex() not in text


def test_derive_separates_purpose_and_context() -> None:
    key = os.urandom(32)
    outputs = {crypto.derive(key, p, c) for p, c in itertools.product(
        (b"sealsync:a:v1", b"sealsync:a:v2", b"sealsync:a:v1x"), (b"", b"x", b"\x00"))}
    assert len(outputs) == 9
    # the length prefix keeps (purpose, context) from running together
    assert crypto.derive(key, b"ab", b"c") != crypto.derive(key, b"a", b"bc")


def test_kdf_string_round_trip_and_size() -> None:
    params = KdfParams.new()
    text = params.encode()
    assert len(text) <= 1024 and KdfParams.parse(text) == params
    assert (params.ops, params.mem) == (3, 256 * 1024 * 1024)
    assert KdfParams.new().salt != params.salt


@pytest.mark.parametrize("text", [
    None, 7, "", "argon2id", "sealsync-kdf-v1:argon2id:ops=3:mem=268435456:salt=00",
    "sealsync-kdf-v1:argon2id:ops=3:mem=268435456:salt=" + "AB" * 16,
    "sealsync-kdf-v1:argon2id:ops=3:mem=268435456:salt=" + "ab" * 16 + "\n",
    "sealsync-kdf-v3:argon2id:ops=3:mem=268435456:salt=" + "ab" * 16,
    "sealsync-kdf-v1:scrypt:ops=3:mem=268435456:salt=" + "ab" * 16,
])
def test_malformed_kdf_strings_are_refused(text: object) -> None:
    with pytest.raises(KdfError):
        KdfParams.parse(text)


@pytest.mark.parametrize("ops,mem", [(1, 256 << 20), (3, 8 << 20), (65, 256 << 20),
                                     (3, 5 << 30)])
def test_weak_or_absurd_parameters_from_a_server_are_refused(ops: int, mem: int) -> None:
    """A server downgrading Argon2id would turn auth_key into a cheap
    passphrase-guessing oracle; one asking for 5 GiB would exhaust the device."""
    text = KdfParams(ops, mem, bytes(16)).encode()
    with pytest.raises(KdfError):
        KdfParams.parse(text, SAFE_LIMITS)


def test_passphrases_are_normalised_and_salted() -> None:
    params = KdfParams(1, 8192, bytes(16))
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert params.stretch(composed) == params.stretch(decomposed)
    assert params.stretch("a") != params.stretch("b")
    assert params.stretch("a") != KdfParams(1, 8192, b"\x01" * 16).stretch("a")
    with pytest.raises(ValueError):
        params.stretch("")
    KdfParams.parse(params.encode(), TEST_LIMITS)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 100, 4096, 10_000, 262_144, 1_048_575,
                               1_048_576, 4_194_304, 16_777_216])
def test_padme_buckets(n: int) -> None:
    padded = crypto.padded_len(n)
    assert n < padded <= (n + 1) * 1.12 + 1
    assert crypto.padded_len(padded - 1) == padded  # a bucket maps to itself


def test_padme_hides_exact_sizes_of_large_chunks() -> None:
    """Every legal CDC chunk (256 KiB..4 MiB) lands in one of 129 stored sizes:
    about 7 bits of length per chunk reach the server instead of about 22."""
    sizes = {crypto.padded_len(n) for n in range(256 * 1024, 4 * 1024 * 1024 + 1, 61)}
    assert len(sizes) <= 129
    assert len({crypto.padded_len(n) for n in range(1 << 20, (1 << 20) + 32767)}) == 1


def test_every_single_byte_change_to_an_envelope_is_caught() -> None:
    key, context = os.urandom(32), b"context"
    envelope = crypto.seal(key, crypto.KIND_CHUNK, b"short secret", context)
    assert crypto.open_sealed(key, crypto.KIND_CHUNK, envelope, context) == b"short secret"
    for i in range(len(envelope)):
        bad = bytearray(envelope)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            crypto.open_sealed(key, crypto.KIND_CHUNK, bytes(bad), context)
    for bad_context in (b"", b"contexT", context + b"\x00"):
        with pytest.raises(IntegrityError):
            crypto.open_sealed(key, crypto.KIND_CHUNK, envelope, bad_context)
    with pytest.raises(IntegrityError):
        crypto.open_sealed(key, crypto.KIND_MANIFEST, envelope, context)


def test_salts_are_fresh_so_equal_plaintexts_give_different_envelopes() -> None:
    key = os.urandom(32)
    a = crypto.seal(key, crypto.KIND_CHUNK, b"same", b"")
    b = crypto.seal(key, crypto.KIND_CHUNK, b"same", b"")
    assert a != b and len(a) == len(b) == crypto.sealed_len(4)
