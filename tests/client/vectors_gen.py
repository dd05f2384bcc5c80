"""Builds the format test vectors from fixed randomness.

    .venv/bin/python -m tests.client.vectors_gen   # rewrite vectors/format_v2.json

tests/client/test_vectors.py rebuilds them in memory and compares with the
file, so any change to the format shows up as a diff of this JSON. Another
implementation (a mobile client) only needs the JSON.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sealsync_client import (
    AccountKeys,
    ChunkRef,
    DeviceKeys,
    KdfLimits,
    KdfParams,
    Keyring,
    Manifest,
    ManifestPlace,
    crypto,
    seal_chunk,
    seal_keyfile,
    seal_manifest,
)
from sealsync_client.chunking import Chunker
from sealsync_client.history import ZERO, chain, version_hash
from sealsync_client.keys import ROOT_KEYRING_ID
from sealsync_client.manifest import Link, signed_message
from sealsync_client.pack import MAGIC, VERSION, PackWriter, pack_len
from sealsync_client.secret_key import SecretKey

PATH = Path(__file__).parent / "vectors" / "format_v2.json"
DEVICE = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
TEST_LIMITS = KdfLimits(min_ops=1, min_mem=8192)  # vectors use cheap Argon2id
USER = "0123456789abcdef0123456789abcdef"
OTHER_USER = "fedcba9876543210fedcba9876543210"
FILE = "00112233445566778899aabbccddeeff"
OTHER_FILE = "ffeeddccbbaa99887766554433221100"
FOLDER_ID = bytes.fromhex("5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e")


class FixedRandom:
    """Deterministic stand-in for os.urandom: SHAKE-256 of a label and counter."""

    def __init__(self, label: str) -> None:
        self.label, self.n = label.encode(), 0

    def __call__(self, size: int) -> bytes:
        self.n += 1
        return hashlib.shake_256(self.label + self.n.to_bytes(4, "big")).digest(size)


def pseudo(label: str, size: int) -> bytes:
    """Reproducible pseudo-random content."""
    return hashlib.shake_256(label.encode()).digest(size)


def ring_fields(ring: Keyring) -> dict[str, str]:
    return {"keyring_id": ring.keyring_id.hex(), "content": ring.content.hex(),
            "chunk_id": ring.chunk_id.hex(), "chunker": ring.chunker.hex(),
            "manifest": ring.manifest.hex()}


def manifest_fields(m: Manifest) -> dict[str, Any]:
    assert m.link is not None
    return {"path": m.path, "size": m.size, "mtime_ns": m.mtime_ns, "mode": m.mode,
            "device": m.device, "tombstone": m.tombstone,
            "inline": None if m.inline is None else m.inline.hex(),
            "chunks": [[c.id, c.size] for c in m.chunks],
            "link": link_fields(m.link), "signature": m.signature.hex()}


def link_fields(link: Link) -> dict[str, Any]:
    return {"prev": link.prev.hex(), "device_id": link.device_id, "counter": link.counter,
            "feed_seq": link.feed_seq, "feed_hash": link.feed_hash.hex()}


def signed(keys: AccountKeys, ring: Keyring, place: ManifestPlace, m: Manifest,
           link: Link) -> Manifest:
    """What History.sign does, with the link given (Ed25519 is deterministic)."""
    linked = replace(m, link=link, signature=b"")
    sig = keys.signing_key().sign(signed_message(ring, place, linked)).signature
    return replace(linked, signature=sig)


def salt_of(envelope: bytes, clear: int = 0) -> str:
    """The random salt inside an envelope (what a re-implementation injects)."""
    return envelope[2 + clear:2 + clear + crypto.SALT_LEN].hex()


def flip(data: bytes, index: int) -> str:
    out = bytearray(data)
    out[index] ^= 0x01
    return out.hex()


def unpadded_chunk_envelope(key: bytes, context: bytes, body: bytes, rand: FixedRandom) -> bytes:
    """A correctly authenticated envelope whose plaintext lacks valid padding."""
    salt = rand(crypto.SALT_LEN)
    aead_key, commit = crypto._object_keys(key, crypto.KIND_CHUNK, salt)
    header = bytes([crypto.VERSION]) + crypto.KIND_CHUNK + salt + commit
    return header + AESGCM(aead_key).encrypt(bytes(12), body, header + context)


def two_secret_account(passphrase: str) -> dict[str, Any]:
    """A kdf v2 account: passphrase + Secret Key (FORMAT.md section 2)."""
    rand = FixedRandom("sealsync two-secret account")
    params = KdfParams.new(ops=1, mem=8192, rand=rand)
    secret = SecretKey.new(rand)
    keys = AccountKeys.from_passphrase(passphrase, params, secret.raw)
    return {"passphrase": passphrase, "kdf": params.encode(), "secret_key": secret.raw.hex(),
            "secret_key_text": secret.text(), "stretched": params.stretch(passphrase).hex(),
            "master": keys.master.hex(), "auth_key": keys.auth_key(),
            "signing_public_key": keys.signing_key().verify_key.encode().hex(),
            "root_folder_key": keys.root_folder_key().hex()}


def build() -> dict[str, Any]:
    rand = FixedRandom("sealsync format v1 vectors")
    passphrase = "correct horse battery staple \u00e9t\u00e9"  # NFC-normalised before Argon2id
    params = KdfParams.new(ops=1, mem=8192, rand=rand, version=1)  # the pre-Secret-Key account
    keys = AccountKeys.from_passphrase(passphrase, params)
    root = keys.root_keyring()
    folder_key = pseudo("folder key", 32)
    folder = Keyring.from_folder_key(folder_key, FOLDER_ID)
    account = {
        "passphrase": passphrase, "kdf": params.encode(), "master": keys.master.hex(),
        "auth_key": keys.auth_key(),
        "signing_public_key": keys.signing_key().verify_key.encode().hex(),
        "root_folder_key": keys.root_folder_key().hex(), "root_keyring": ring_fields(root),
        "chunker_seed": Chunker(root.chunker).seed,
    }
    folder_vector = {"folder_key": folder_key.hex(), **ring_fields(folder)}

    chunks = []
    for label, ring, fkey, data in [
        ("empty-ish: one byte", root, keys.root_folder_key(), b"\x00"),
        ("text", root, keys.root_folder_key(), b"Sealsync chunk vector: hello, world\n"),
        ("8 KiB pseudo-random", root, keys.root_folder_key(), pseudo("chunk", 8192)),
        ("folder keyring", folder, folder_key, b"a chunk in a password-protected folder"),
    ]:
        cid, env = seal_chunk(ring, USER, data, rand=FixedRandom(f"chunk {label}"))
        chunks.append({"label": label, "folder_key": fkey.hex(),
                       "keyring_id": ring.keyring_id.hex(), "user_id": USER,
                       "plaintext": data.hex(), "salt": salt_of(env), "chunk_id": cid,
                       "envelope": env.hex()})

    refs = (ChunkRef(chunks[1]["chunk_id"], 36), ChunkRef(chunks[2]["chunk_id"], 8192))
    manifests = []
    feed, vhashes = ZERO, []
    for seq, (label, m, base) in enumerate([
        ("chunked", Manifest("Documents/report \u00fcber.txt", 8228, 1_700_000_000_123_456_789,
                             0o100644, "laptop", refs), 0),
        ("inline", Manifest("notes/todo.md", 12, 1_700_000_001_000_000_000, 0o100600,
                            "phone", inline=b"- buy milk\n\n"), 4),
        ("tombstone", Manifest.deleted("old/file.bin", 1_700_000_002_000_000_000, "laptop"), 7),
    ], start=1):
        place = ManifestPlace.for_upload(USER, FILE, base)
        link = Link(ZERO if base == 0 else pseudo(f"prev {label}", 32), DEVICE, seq,
                    seq - 1, feed)
        m = signed(keys, root, place, m, link)
        vhash = version_hash(root, place, m)
        feed = chain(feed, seq, vhash)
        vhashes.append(vhash)
        env = seal_manifest(root, place, m, rand=FixedRandom(f"manifest {label}"))
        manifests.append({"label": label, "folder_key": keys.root_folder_key().hex(),
                          "keyring_id": ROOT_KEYRING_ID.hex(), "user_id": USER, "file_id": FILE,
                          "revision": place.revision, "base_revision": place.base_revision,
                          "manifest": manifest_fields(m), "plaintext": m.encode().hex(),
                          "signed_message": signed_message(root, place, m).hex(),
                          "version_hash": vhash.hex(), "feed_seq": seq,
                          "feed_hash_after": feed.hex(),
                          "salt": salt_of(env), "envelope": env.hex()})

    data = pseudo("chunking input", 6 * 1024 * 1024 + 12345)
    chunking = [{"chunker_key": ring.chunker.hex(), "tier": tier,
                 "seed": Chunker(ring.chunker, tier).seed,
                 "input": {"shake256": "chunking input", "length": len(data)},
                 "boundaries": [list(b) for b in Chunker(ring.chunker, tier).boundaries(data)]}
                for ring, tier in ((root, 0), (folder, 0), (root, 1))]

    kf_params = KdfParams.new(ops=1, mem=8192, rand=FixedRandom("keyfile kdf"))
    device = DeviceKeys(keys.master, USER, params.encode(), {FOLDER_ID.hex(): folder_key})
    keyfile_env = seal_keyfile(device, "device passphrase", kf_params,
                               rand=FixedRandom("keyfile salt"))
    keyfile = {"passphrase": "device passphrase", "ops": kf_params.ops, "mem": kf_params.mem,
               "kdf_salt": kf_params.salt.hex(), "salt": salt_of(keyfile_env, 28),
               "payload": device.to_json().decode(), "file": keyfile_env.hex()}

    return {
        "format": "sealsync-v2", "spec": "docs/FORMAT.md",
        "account": account, "account_two_secret": two_secret_account(passphrase),
        "folder_keyring": folder_vector,
        "padded_len": [[n, crypto.padded_len(n)] for n in
                  (0, 1, 15, 16, 100, 4095, 4096, 65536, 262144, 1000000, 1048576, 4194304)],
        "chunks": chunks, "manifests": manifests, "chunking": chunking, "keyfile": keyfile,
        "invalid": invalid(root, folder, chunks, manifests),
        "invalid_signatures": invalid_signatures(keys, root, manifests),
        **packs(keys, root, folder_key, chunks),
    }


def forged_index_tail(ring: Keyring, user: str, pack_id: bytes,
                      entries: list[tuple[bytes, int, int]], size: int,
                      count: int | None = None, rand: crypto.Random | None = None) -> bytes:
    """Index envelope and trailer sealed with the right keys and binding
    around any index content: what only a keyring holder can make."""
    n = len(entries) if count is None else count
    plaintext = struct.pack(">II", size, n) + b"".join(struct.pack(">32sII", *e)
                                                     for e in entries)
    index_len = crypto.sealed_len(len(plaintext))
    trailer = struct.pack(">IB4s", index_len, VERSION, MAGIC)
    index = crypto.seal(ring.content, crypto.KIND_PACK_INDEX, plaintext,
                        ring.keyring_id + bytes.fromhex(user) + pack_id + trailer,
                        rand=rand or FixedRandom("forged index"))
    return index + trailer


def packs(keys: AccountKeys, root: Keyring, folder_key: bytes,
          chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """A pack of the three root-keyring chunk vectors (section 12), and tails
    that must each raise IntegrityError."""
    writer = PackWriter(root, USER)
    for c in chunks[:3]:
        assert writer.add(c["chunk_id"], bytes.fromhex(c["envelope"]))
    rand = FixedRandom("pack")
    sp = writer.finish(rand=rand)
    data = sp.data
    index_len, version, magic = struct.unpack(">IB4s", data[-9:])
    index = data[-9 - index_len:-9]
    pid = bytes.fromhex(sp.pack_id)
    context = root.keyring_id + bytes.fromhex(USER) + pid + data[-9:]
    plaintext = crypto.open_sealed(root.content, crypto.KIND_PACK_INDEX, index, context)
    gap = len(data) - sp.blobs[-1].end - index_len - 9
    vector = {
        "folder_key": keys.root_folder_key().hex(), "keyring_id": root.keyring_id.hex(),
        "user_id": USER, "added": [c["chunk_id"] for c in chunks[:3]],
        "pack_id": sp.pack_id, "salt": salt_of(index), "size": len(data),
        "header": data[:5].hex(), "blobs": [list(b) for b in sp.blobs], "gap": gap,
        "index_plaintext": plaintext.hex(), "index_context": context.hex(),
        "index": index.hex(), "trailer": data[-9:].hex(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    tail = data[-9 - index_len:]
    entries = [(bytes.fromhex(b.chunk_id), b.offset, b.length) for b in sp.blobs]
    forge_rand = FixedRandom("invalid packs")
    out: list[dict[str, Any]] = []

    def case(reason: str, bad: bytes, **over: Any) -> None:
        out.append({"reason": reason, "folder_key": vector["folder_key"],
                    "keyring_id": vector["keyring_id"], "user_id": USER,
                    "pack_id": sp.pack_id, "size": len(data), "tail": bad.hex(), **over})

    other = FixedRandom("another pack")(16).hex()
    case("index of another pack (swapped pack id)", tail, pack_id=other)
    case("opened for another user", tail, user_id=OTHER_USER)
    case("wrong keyring", tail, folder_key=chunks[3]["folder_key"],
         keyring_id=chunks[3]["keyring_id"])
    case("index ciphertext tampered", bytes.fromhex(flip(tail, crypto.HEADER_LEN + 3)))
    case("index tag tampered", bytes.fromhex(flip(tail, len(tail) - 10)))
    case("trailer: index length one short", tail[:-9] + struct.pack(
        ">IB4s", index_len - 1, version, magic))
    case("trailer: unknown version", tail[:-5] + b"\x02" + tail[-4:])
    case("trailer: magic changed", tail[:-1] + b"Q")
    case("truncated (last byte lost)", tail[:-1])
    case("shorter than a trailer", tail[-8:])
    case("size from Content-Range disagrees", tail, size=len(data) + 65536)
    case("a non-zero byte in the gap", b"\x01" + tail)
    case("authentic but blobs not in chunk-id order", forged_index_tail(
        root, USER, pid, [(entries[1][0], entries[0][1], entries[1][2]),
                          (entries[0][0], entries[1][1], entries[0][2]), entries[2]],
        len(data), rand=forge_rand))
    case("authentic but blobs not back to back", forged_index_tail(
        root, USER, pid, [entries[0], (entries[1][0], entries[1][1] + 1, entries[1][2]),
                          entries[2]], len(data), rand=forge_rand))
    case("authentic but a blob length no chunk envelope has", forged_index_tail(
        root, USER, pid, [*entries[:2], (entries[2][0], entries[2][1], entries[2][2] + 1)],
        len(data), rand=forge_rand))
    case("authentic but the size is not the pack's bucket", forged_index_tail(
        root, USER, pid, entries, len(data) + 65536, rand=forge_rand),
        size=len(data) + 65536)
    case("authentic but the count disagrees", forged_index_tail(
        root, USER, pid, entries, len(data), count=4, rand=forge_rand))
    assert pack_len(sp.blobs[-1].end + index_len + 9) == len(data)
    return {"pack": vector, "invalid_packs": out}


def invalid_signatures(keys: AccountKeys, root: Keyring,
                       manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Manifests that open (the AEAD is fine) but whose signature must fail
    verify_signed: history.py refuses each with IntegrityError."""
    m = manifests[0]
    place = ManifestPlace(USER, FILE, m["revision"], m["base_revision"])
    good = Manifest.decode(bytes.fromhex(m["plaintext"]))
    assert good.link is not None
    other = AccountKeys(pseudo("another account", 32))
    rand = FixedRandom("invalid signatures")
    out = []
    for reason, bad in [
        ("signed by another account", signed(other, root, place, good, good.link)),
        ("signature bit flipped", replace(good, signature=bytes.fromhex(flip(good.signature, 0)))),
        ("link changed after signing (counter)",
         replace(good, link=replace(good.link, counter=good.link.counter + 1))),
        ("link changed after signing (feed hash)",
         replace(good, link=replace(good.link, feed_hash=pseudo("forged feed", 32)))),
        ("content changed after signing (path)", replace(good, path="elsewhere.txt")),
    ]:
        env = seal_manifest(root, place, bad, rand=rand)
        out.append({"reason": reason, "folder_key": m["folder_key"],
                    "keyring_id": m["keyring_id"], "user_id": USER, "file_id": FILE,
                    "revision": m["revision"], "base_revision": m["base_revision"],
                    "signing_public_key": keys.signing_key().verify_key.encode().hex(),
                    "envelope": env.hex()})
    return out


def invalid(root: Keyring, folder: Keyring, chunks: list[dict[str, Any]],
            manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Envelopes and contexts that must each raise IntegrityError."""
    good = chunks[1]
    env = bytes.fromhex(good["envelope"])
    out: list[dict[str, Any]] = []

    def chunk(reason: str, envelope: str, **over: Any) -> None:
        out.append({"kind": "chunk", "reason": reason, "folder_key": good["folder_key"],
                    "keyring_id": good["keyring_id"], "user_id": USER,
                    "chunk_id": good["chunk_id"], "size": 36, "envelope": envelope, **over})

    chunk("wrong key (another keyring)", env.hex(), folder_key=chunks[3]["folder_key"],
          keyring_id=chunks[3]["keyring_id"])
    chunk("version byte changed", flip(env, 0))
    chunk("kind byte changed to manifest", (bytes([1]) + b"M" + env[2:]).hex())
    chunk("salt tampered", flip(env, 5))
    chunk("key commitment tampered", flip(env, 2 + 24 + 3))
    chunk("ciphertext tampered", flip(env, crypto.HEADER_LEN + 1))
    chunk("tag tampered", flip(env, len(env) - 1))
    chunk("truncated", env[:-1].hex())
    chunk("too short to hold a header", env[:crypto.HEADER_LEN].hex())
    chunk("opened under another chunk id (swapped chunk)", env.hex(),
          chunk_id=chunks[2]["chunk_id"])
    chunk("opened for another user", env.hex(), user_id=OTHER_USER)
    chunk("manifest says another size", env.hex(), size=35)
    ctx = root.keyring_id + bytes.fromhex(USER) + bytes.fromhex(good["chunk_id"])
    rand = FixedRandom("invalid vectors")
    chunk("authentic but not padded", unpadded_chunk_envelope(
        root.content, ctx, bytes.fromhex(good["plaintext"]), rand).hex())
    chunk("authentic but padding not canonical (bucket too large)", unpadded_chunk_envelope(
        root.content, ctx, bytes.fromhex(good["plaintext"]) + b"\x80" + bytes(100), rand).hex())
    chunk("authentic, padded, but plaintext does not hash to the chunk id",
          crypto.seal(root.content, crypto.KIND_CHUNK, b"planted bytes, same length!!!!!!!!!!",
                      ctx, rand=rand).hex())

    m = manifests[0]
    menv = bytes.fromhex(m["envelope"])

    def manifest(reason: str, envelope: str, **over: Any) -> None:
        out.append({"kind": "manifest", "reason": reason, "folder_key": m["folder_key"],
                    "keyring_id": m["keyring_id"], "user_id": USER, "file_id": FILE,
                    "revision": m["revision"], "base_revision": m["base_revision"],
                    "envelope": envelope, **over})

    manifest("replayed as a newer revision", menv.hex(), revision=2, base_revision=1)
    manifest("revision right, base revision wrong", menv.hex(), base_revision=0, revision=3)
    manifest("moved to another file", menv.hex(), file_id=OTHER_FILE)
    manifest("opened for another user", menv.hex(), user_id=OTHER_USER)
    manifest("wrong keyring", menv.hex(), folder_key=chunks[3]["folder_key"],
             keyring_id=chunks[3]["keyring_id"])
    manifest("ciphertext tampered", flip(menv, crypto.HEADER_LEN + 7))
    manifest("a chunk envelope presented as a manifest", chunks[1]["envelope"])
    mctx = ManifestPlace(USER, FILE, m["revision"], m["base_revision"]).context(root)
    manifest("authentic but malformed (trailing byte)", crypto.seal(
        root.manifest, crypto.KIND_MANIFEST, bytes.fromhex(m["plaintext"]) + b"\x00", mctx,
        rand=rand).hex())
    manifest("authentic but sizes do not add up", crypto.seal(
        root.manifest, crypto.KIND_MANIFEST,
        bytes.fromhex(m["plaintext"])[:2] + (8229).to_bytes(8, "big")
        + bytes.fromhex(m["plaintext"])[10:], mctx, rand=rand).hex())
    return out


def main() -> None:
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
