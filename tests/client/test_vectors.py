"""The format, pinned: regenerate the vectors, verify them, refuse the invalid ones."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nacl.signing import VerifyKey
from sealsync_client import (
    AccountKeys,
    ChunkRef,
    DeviceKeys,
    IntegrityError,
    KdfParams,
    Keyring,
    Manifest,
    ManifestPlace,
    WrongPassphrase,
    crypto,
    open_chunk,
    open_keyfile,
    open_manifest,
    seal_chunk,
    seal_keyfile,
    seal_manifest,
)
from sealsync_client.chunking import Chunker
from sealsync_client.history import ZERO, chain, verify_signed
from sealsync_client.manifest import Link, signed_message
from sealsync_client.pack import PackWriter, blob_at, open_pack_index
from sealsync_client.secret_key import SecretKey

from . import vectors_gen
from .vectors_gen import TEST_LIMITS

VECTORS: dict[str, Any] = json.loads(vectors_gen.PATH.read_text(encoding="utf-8"))


def ring_of(v: dict[str, Any]) -> Keyring:
    return Keyring.from_folder_key(bytes.fromhex(v["folder_key"]), bytes.fromhex(v["keyring_id"]))


def fixed(salt_hex: str) -> crypto.Random:
    """A random source that returns the vector's recorded salt."""
    return lambda n: bytes.fromhex(salt_hex)[:n]


def manifest_of(f: dict[str, Any]) -> Manifest:
    li = f["link"]
    link = Link(bytes.fromhex(li["prev"]), li["device_id"], li["counter"], li["feed_seq"],
                bytes.fromhex(li["feed_hash"]))
    return Manifest(f["path"], f["size"], f["mtime_ns"], f["mode"], f["device"],
                    tuple(ChunkRef(i, s) for i, s in f["chunks"]),
                    None if f["inline"] is None else bytes.fromhex(f["inline"]), f["tombstone"],
                    link, bytes.fromhex(f["signature"]))


def test_regenerating_the_vectors_gives_the_committed_file() -> None:
    assert vectors_gen.build() == VECTORS, "the format changed: if on purpose, bump " \
        "the versions and run: python -m tests.client.vectors_gen"


def test_account_key_hierarchy() -> None:
    a = VECTORS["account"]
    params = KdfParams.parse(a["kdf"], TEST_LIMITS)
    keys = AccountKeys.from_passphrase(a["passphrase"], params)
    assert keys.master.hex() == a["master"]
    assert keys.auth_key() == a["auth_key"]
    assert keys.signing_key().verify_key.encode().hex() == a["signing_public_key"]
    assert keys.root_folder_key().hex() == a["root_folder_key"]
    assert vectors_gen.ring_fields(keys.root_keyring()) == a["root_keyring"]
    assert Chunker(keys.root_keyring().chunker).seed == a["chunker_seed"]
    f = VECTORS["folder_keyring"]
    assert vectors_gen.ring_fields(ring_of(f)) == {k: v for k, v in f.items() if k != "folder_key"}


def test_padded_lengths() -> None:
    for length, padded in VECTORS["padded_len"]:
        assert crypto.padded_len(length) == padded


@pytest.mark.parametrize("v", VECTORS["chunks"], ids=lambda v: v["label"])
def test_chunk_vectors_seal_and_open(v: dict[str, Any]) -> None:
    ring, plaintext = ring_of(v), bytes.fromhex(v["plaintext"])
    cid, envelope = seal_chunk(ring, v["user_id"], plaintext, rand=fixed(v["salt"]))
    assert (cid, envelope.hex()) == (v["chunk_id"], v["envelope"])
    opened = open_chunk(ring, v["user_id"], v["chunk_id"], len(plaintext),
                        bytes.fromhex(v["envelope"]))
    assert opened == plaintext


@pytest.mark.parametrize("v", VECTORS["manifests"], ids=lambda v: v["label"])
def test_manifest_vectors_seal_and_open(v: dict[str, Any]) -> None:
    ring, manifest = ring_of(v), manifest_of(v["manifest"])
    place = ManifestPlace(v["user_id"], v["file_id"], v["revision"], v["base_revision"])
    assert manifest.encode().hex() == v["plaintext"]
    envelope = seal_manifest(ring, place, manifest, rand=fixed(v["salt"]))
    assert envelope.hex() == v["envelope"]
    assert open_manifest(ring, place, bytes.fromhex(v["envelope"])) == manifest
    assert signed_message(ring, place, manifest).hex() == v["signed_message"]
    key = VerifyKey(bytes.fromhex(VECTORS["account"]["signing_public_key"]))
    assert verify_signed(key, ring, place, manifest).hex() == v["version_hash"]


def test_the_feed_chain_over_the_manifest_vectors() -> None:
    """The three manifests as feed entries 1..3: each link names the prefix
    before it, and the chain hash after each entry is pinned."""
    feed = ZERO
    for v in VECTORS["manifests"]:
        link = v["manifest"]["link"]
        assert (link["feed_seq"], link["feed_hash"]) == (v["feed_seq"] - 1, feed.hex())
        feed = chain(feed, v["feed_seq"], bytes.fromhex(v["version_hash"]))
        assert feed.hex() == v["feed_hash_after"]


@pytest.mark.parametrize("v", VECTORS["invalid_signatures"], ids=lambda v: v["reason"])
def test_invalid_signatures_raise_the_one_integrity_error(v: dict[str, Any]) -> None:
    ring = ring_of(v)
    place = ManifestPlace(v["user_id"], v["file_id"], v["revision"], v["base_revision"])
    manifest = open_manifest(ring, place, bytes.fromhex(v["envelope"]))  # the AEAD is fine
    with pytest.raises(IntegrityError):
        verify_signed(VerifyKey(bytes.fromhex(v["signing_public_key"])), ring, place, manifest)


@pytest.mark.parametrize("v", VECTORS["chunking"],
                         ids=lambda v: f"{v['chunker_key'][:8]}-tier{v['tier']}")
def test_chunk_boundaries(v: dict[str, Any]) -> None:
    spec = v["input"]
    data = hashlib.shake_256(spec["shake256"].encode()).digest(spec["length"])
    chunker = Chunker(bytes.fromhex(v["chunker_key"]), v["tier"])
    assert chunker.seed == v["seed"]
    assert [list(b) for b in chunker.boundaries(data)] == v["boundaries"]


def test_keyfile_vector() -> None:
    k = VECTORS["keyfile"]
    params = KdfParams(k["ops"], k["mem"], bytes.fromhex(k["kdf_salt"]))
    keys = DeviceKeys.from_json(k["payload"].encode())
    assert seal_keyfile(keys, k["passphrase"], params, rand=fixed(k["salt"])).hex() == k["file"]
    opened = open_keyfile(bytes.fromhex(k["file"]), k["passphrase"])
    assert opened.to_json().decode() == k["payload"]
    with pytest.raises(WrongPassphrase):
        open_keyfile(bytes.fromhex(k["file"]), k["passphrase"] + "!")


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: f'{v["kind"]}: {v["reason"]}')
def test_invalid_vectors_raise_the_one_integrity_error(v: dict[str, Any]) -> None:
    ring, envelope = ring_of(v), bytes.fromhex(v["envelope"])
    with pytest.raises(IntegrityError):
        if v["kind"] == "chunk":
            open_chunk(ring, v["user_id"], v["chunk_id"], v["size"], envelope)
        else:
            place = ManifestPlace(v["user_id"], v["file_id"], v["revision"], v["base_revision"])
            open_manifest(ring, place, envelope)


def test_every_invalid_case_is_distinct() -> None:
    reasons = [(v["kind"], v["reason"]) for v in VECTORS["invalid"]]
    assert len(reasons) == len(set(reasons)) >= 20


def _aead_accepts(v: dict[str, Any]) -> bool:
    """Whether the envelope's AEAD alone verifies (padding, ids, sizes aside)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ring, env = ring_of(v), bytes.fromhex(v["envelope"])
    if v["kind"] == "chunk":
        key = ring.content
        context = ring.keyring_id + bytes.fromhex(v["user_id"]) + bytes.fromhex(v["chunk_id"])
    else:
        key = ring.manifest
        context = ManifestPlace(v["user_id"], v["file_id"], v["revision"],
                                v["base_revision"]).context(ring)
    aead_key, _ = crypto._object_keys(key, env[1:2], env[2:2 + crypto.SALT_LEN])
    try:
        AESGCM(aead_key).decrypt(bytes(12), env[crypto.HEADER_LEN:],
                                 env[:crypto.HEADER_LEN] + context)
    except InvalidTag:
        return False
    return True


def test_authentic_invalid_vectors_are_caught_after_the_aead() -> None:
    """The "authentic but ..." cases really pass the AEAD, so what rejects them
    is the padding, id re-hash, size or manifest check they are meant to hit;
    every other case fails the AEAD itself or a header check."""
    for v in VECTORS["invalid"]:
        late = v["reason"].startswith("authentic") or v["reason"] == "manifest says another size"
        assert _aead_accepts(v) is late, v["reason"]


def test_pack_vector() -> None:
    """The pack of three chunk vectors: rebuilt byte for byte from its parts
    and from PackWriter with the recorded pack id and salt, then read back."""
    v = VECTORS["pack"]
    ring = ring_of(v)
    envelopes = {c["chunk_id"]: bytes.fromhex(c["envelope"]) for c in VECTORS["chunks"]}
    randoms = iter([bytes.fromhex(v["pack_id"]), bytes.fromhex(v["salt"])])
    writer = PackWriter(ring, v["user_id"])
    for cid in v["added"]:
        assert writer.add(cid, envelopes[cid])
    sp = writer.finish(rand=lambda n: next(randoms)[:n])
    parts = bytes.fromhex(v["header"]) + b"".join(envelopes[c] for c, _, _ in v["blobs"]) \
        + bytes(v["gap"]) + bytes.fromhex(v["index"]) + bytes.fromhex(v["trailer"])
    assert sp.data == parts and len(parts) == v["size"]
    assert hashlib.sha256(parts).hexdigest() == v["sha256"]
    assert (sp.pack_id, [list(b) for b in sp.blobs]) == (v["pack_id"], v["blobs"])
    index = crypto.open_sealed(ring.content, crypto.KIND_PACK_INDEX, bytes.fromhex(v["index"]),
                               bytes.fromhex(v["index_context"]))
    assert index.hex() == v["index_plaintext"]
    opened = open_pack_index(ring, v["user_id"], v["pack_id"], parts[-65536:], size=len(parts))
    assert [list(b) for b in opened.blobs] == v["blobs"]
    plaintexts = {c["chunk_id"]: bytes.fromhex(c["plaintext"]) for c in VECTORS["chunks"]}
    for ref in opened.blobs:
        assert open_chunk(ring, v["user_id"], ref.chunk_id, len(plaintexts[ref.chunk_id]),
                          blob_at(parts, ref)) == plaintexts[ref.chunk_id]


@pytest.mark.parametrize("v", VECTORS["invalid_packs"], ids=lambda v: v["reason"])
def test_invalid_pack_tails_raise_the_one_integrity_error(v: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        open_pack_index(ring_of(v), v["user_id"], v["pack_id"], bytes.fromhex(v["tail"]),
                        size=v["size"])
    if v["reason"].startswith("authentic"):  # the AEAD accepts it: the layout check refuses it
        tail = bytes.fromhex(v["tail"])
        ring = ring_of(v)
        crypto.open_sealed(ring.content, crypto.KIND_PACK_INDEX, tail[:-9],
                           ring.keyring_id + bytes.fromhex(v["user_id"])
                           + bytes.fromhex(v["pack_id"]) + tail[-9:])


def test_two_secret_account_hierarchy_from_the_spec_alone() -> None:
    """FORMAT.md section 2, recomputed with hashlib and PyNaCl only: the master is
    BLAKE2b keyed by the stretched passphrase over the Secret Key."""
    import hashlib

    import nacl.pwhash

    a = VECTORS["account_two_secret"]
    params = KdfParams.parse(a["kdf"], TEST_LIMITS)
    assert params.version == 2
    stretched = nacl.pwhash.argon2id.kdf(32, "correct horse battery staple \u00e9t\u00e9".encode(),
                                         params.salt, opslimit=1, memlimit=8192)
    assert stretched.hex() == a["stretched"]

    def derive(key: bytes, purpose: bytes, context: bytes = b"") -> bytes:
        return hashlib.blake2b(bytes([len(purpose)]) + purpose + context, digest_size=32,
                               key=key, person=b"sealsync:kdf:v1").digest()

    master = derive(stretched, b"sealsync:master:v2", bytes.fromhex(a["secret_key"]))
    assert master.hex() == a["master"]
    assert derive(master, b"sealsync:auth:v2").hex() == a["auth_key"]
    assert derive(master, b"sealsync:folder-root:v1").hex() == a["root_folder_key"]
    keys = AccountKeys.from_passphrase(a["passphrase"], params, bytes.fromhex(a["secret_key"]))
    assert keys.auth_key() == a["auth_key"]
    assert keys.signing_key().verify_key.encode().hex() == a["signing_public_key"]
    assert SecretKey.parse(a["secret_key_text"]).raw.hex() == a["secret_key"]
