"""The device signature format (docs/FORMAT.md section 13): the client's
messages equal the server's byte for byte, pinned by vectors; the device
key file and sealed names open only for their own account and device; the
server's bundle reader finds every manifest's hash and the trailer however
S3 cuts the stream."""
from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealsync_client import devices
from sealsync_client.errors import KeyfileError

from chalicelib.core import signatures as server

USER, DEVICE, FILE = "11" * 16, "22" * 16, "33" * 16
CHUNKS = ["44" * 32, "55" * 32]
ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
chunk_ids = st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=5)


@given(user=ids, file=ids, base=st.integers(0, 2**53), tomb=st.booleans(),
       manifest=st.binary(max_size=200), chunks=chunk_ids)
def test_the_client_signs_what_the_server_checks(user: str, file: str, base: int, tomb: bool,
                                                 manifest: bytes, chunks: list[str]) -> None:
    ours = devices.entry_message(user, file, base, tomb, manifest, chunks)
    signed = server.Signed(file, base, tomb, len(manifest), tuple(chunks))
    assert ours == server.entry_message(user, signed, hashlib.sha256(manifest).digest())


@given(user=ids, device=ids, key=st.binary(min_size=32, max_size=32))
def test_enrolment_and_revocation_messages_match(user: str, device: str, key: bytes) -> None:
    assert devices.device_message(user, device, key) == server.device_message(user, device, key)
    assert devices.revoke_message(user, device) == server.revoke_message(user, device)


# Vectors (FORMAT.md section 13): change the format, change these and the doc.
SEED = bytes(range(32))  # its public key: 03a107bff3ce10be1d70dd18e74bc099...
MESSAGES = {
    "entry": devices.entry_message(USER, FILE, 7, False, b"sealed manifest", CHUNKS),
    "device": devices.device_message(USER, DEVICE, bytes(32)),
    "revoke": devices.revoke_message(USER, DEVICE),
}
PINNED = {  # SHA-256 of the message, its Ed25519 signature under SEED
    "entry": ("1555722a1825e032af28e60b5a98f5de8854731b61dcf5ea33bfe81a2165f68f",
              "c625f78231890e96e930ce3f712939c499987c79bb7dd84becdb4a099f9ed016"
              "b0b9105d88d68b4617bdef0028a3c59e9648f6c5fb488cf845a631679e03a300"),
    "device": ("ddb7b0e342eda6b4e1752da80ec8767865ce35b195f7d3dcd93a41d4e2041fa3",
               "2701793f88dc3f89ea238eab02f2cc60854d309cfaf2bdc979bdf7f027eb8bc2"
               "722c35b62226e248095c86406dd2750c55cd8512ca29e946a5ce18100464310c"),
    "revoke": ("9b40b7dae2b7bfd854b4866dd253b5f33c9a6480508072a9234d2a1d47e24bfe",
               "290b71e87568dd9f0799d570387cffe65c1445244bcc7e744356a93aff029b9c"
               "4b60d86c76eaf22d82f145c60e08051e95a03c7664bc6155d1e910323278610a"),
}


def test_vectors() -> None:
    got = {name: (hashlib.sha256(m).hexdigest(),
                  nacl.signing.SigningKey(SEED).sign(m).signature.hex())
           for name, m in MESSAGES.items()}
    assert got == PINNED
    assert [len(m) for m in MESSAGES.values()] == [131, 83, 51]
    assert MESSAGES["entry"].startswith(b"sealsync-entry-v1\x00" + bytes.fromhex(USER))


def test_a_signature_verifies_on_the_server_only_for_its_bytes() -> None:
    key = devices.DeviceKey(USER, DEVICE, SEED)
    sig = key.sign_entry(FILE, 3, False, b"bytes", CHUNKS)
    signed = server.Signed(FILE, 3, False, 5, tuple(CHUNKS))
    dev = server.Device(DEVICE, key.public)
    ok = server.entry_problems(USER, dev, [signed], [sig],
                               [hashlib.sha256(b"bytes").digest()], [0])
    assert ok == {}
    for digest, entry in ((hashlib.sha256(b"other").digest(), signed),
                          (hashlib.sha256(b"bytes").digest(),
                           server.Signed(FILE, 4, False, 5, tuple(CHUNKS))),
                          (hashlib.sha256(b"bytes").digest(),
                           server.Signed(FILE, 3, True, 5, tuple(CHUNKS))),
                          (hashlib.sha256(b"bytes").digest(),
                           server.Signed(FILE, 3, False, 5, tuple(CHUNKS[:1])))):
        assert "bad signature" in server.entry_problems(USER, dev, [entry], [sig], [digest],
                                                        [0])[0]


def test_the_enrolment_vouch_verifies_with_the_account_key() -> None:
    account = nacl.signing.SigningKey(bytes(32))
    fields = devices.DeviceKey(USER, DEVICE, SEED).enrolment(account)
    assert server.verify(bytes.fromhex(fields["signing_key"]),
                         server.device_message(USER, DEVICE, bytes.fromhex(fields["device_key"])),
                         bytes.fromhex(fields["device_sig"]))
    assert not server.verify(bytes.fromhex(fields["signing_key"]),
                             server.device_message(USER, "99" * 16,
                                                   bytes.fromhex(fields["device_key"])),
                             bytes.fromhex(fields["device_sig"]))


@given(sizes=st.lists(st.integers(0, 40), max_size=6), cut=st.integers(1, 17),
       tail=st.integers(0, 3))
def test_the_bundle_reader_hashes_each_slice_whatever_the_blocks(sizes: list[int], cut: int,
                                                                 tail: int) -> None:
    parts = [bytes([i]) * n for i, n in enumerate(sizes)]
    trailer = bytes(range(64)) * tail
    data = b"".join(parts) + trailer
    blocks = [data[i:i + cut] for i in range(0, len(data), cut)]
    digests, got = server.read_bundle(iter(blocks), sizes, len(trailer))
    assert digests == [hashlib.sha256(p).digest() for p in parts]
    assert got == trailer
    sigs = server.trailer_signatures(got, len(sizes))
    assert sigs == [trailer[i * 64:(i + 1) * 64] if i < tail else None
                    for i in range(len(sizes))]


def test_the_device_key_file_opens_only_for_its_account_and_device(tmp_path: Path) -> None:
    master = bytes(range(32))
    key = devices.DeviceKey.new(USER, DEVICE)
    path = tmp_path / "device.key"
    devices.save_device_key(path, master, key)
    assert path.stat().st_mode & 0o077 == 0
    again = devices.load_device_key(path, master, USER, DEVICE)
    assert again is not None and again.seed == key.seed
    assert SEED.hex() not in repr(again) and key.seed.hex() not in repr(again)
    with pytest.raises(KeyfileError):
        devices.load_device_key(path, master, USER, "99" * 16)
    with pytest.raises(KeyfileError):
        devices.load_device_key(path, bytes(32), USER, DEVICE)
    assert devices.load_device_key(tmp_path / "none", master, USER, DEVICE) is None


def test_a_sealed_name_opens_only_as_its_devices() -> None:
    master = bytes(range(32))
    sealed = devices.seal_name(master, USER, DEVICE, "Anna's laptop")
    assert "Anna" not in bytes.fromhex(sealed).decode(errors="replace")
    assert len(bytes.fromhex(sealed)) <= 256  # the server's bound
    assert devices.open_name(master, USER, DEVICE, sealed) == "Anna's laptop"
    assert devices.open_name(master, USER, "99" * 16, sealed) is None
    assert devices.open_name(master, USER, DEVICE, "zz") is None
    long = devices.seal_name(master, USER, DEVICE, "x" * 1000)
    assert len(bytes.fromhex(long)) <= 256
