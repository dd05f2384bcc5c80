"""The account's signed, hash-chained history (docs/FORMAT.md section 9).

Threat: the server stores and orders everything, so it could serve an old
head (rollback), drop, repeat or reorder change-feed entries, or show two
devices two different histories (a fork). It cannot forge a version: every
manifest carries a `Link` and an Ed25519 signature by the account key
(derived from the master key, so only the owner's devices hold it).

Each device verifies the change feed entry by entry, in seq order, and
remembers what it verified (state.py). It accepts an entry only if

* its seq is exactly one above the last verified seq (nothing dropped or
  reordered), and an entry it has already verified is served unchanged;
* it is signed, and it extends the file's chain: revision = the highest the
  feed showed + 1, and `prev` = the hash of the revision before it (so no
  rollback, replay, or a second version of one revision);
* its signing device never signed another version with the same counter
  (two such versions can only come from a copied device folder, not from
  the server: that entry alone is refused, `DeviceCloned`), and if it
  claims to be ours, we sealed it and were not told it lost;
* the prefix of the feed its signer had verified (`feed_seq`, `feed_hash`)
  hashes to what this device computed for the same prefix. Two devices
  shown different histories are detected as soon as either verifies a
  commit the other made after the fork (fork consistency, as in SUNDR).

What it cannot catch alone: a server that withholds new entries (a
freeze), or serves a brand-new device an old but consistent history.
Comparing `History.fingerprint()` between devices out of band exposes both.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Final

import nacl.exceptions

from .errors import DeviceCloned, FeedError, ForkError, IntegrityError, RollbackError
from .keys import Keyring
from .manifest import HASH_LEN, Link, Manifest, ManifestPlace, signed_message
from .state import Sealed, State, Verified

if TYPE_CHECKING:
    import nacl.signing

ZERO: Final = bytes(HASH_LEN)
_PERSON_VERSION: Final = b"sealsync:ver:v1"
_PERSON_FEED: Final = b"sealsync:feed:v1"
_PERSON_REFUSED: Final = b"sealsync:rfs:v1"


def version_hash(ring: Keyring, place: ManifestPlace, manifest: Manifest) -> bytes:
    """The hash that names one signed version: place, body and signature."""
    h = hashlib.blake2b(digest_size=HASH_LEN, person=_PERSON_VERSION)
    h.update(place.context(ring))
    h.update(manifest.encode())
    return h.digest()


def verify_signed(key: nacl.signing.VerifyKey, ring: Keyring, place: ManifestPlace,
                  manifest: Manifest) -> bytes:
    """The version hash of a manifest signed by the account key for exactly
    this place; IntegrityError if it is unsigned or signed for anything else."""
    if manifest.link is None:
        raise IntegrityError()
    try:
        key.verify(signed_message(ring, place, manifest), manifest.signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise IntegrityError() from None
    return version_hash(ring, place, manifest)


def chain(prev: bytes, seq: int, vhash: bytes) -> bytes:
    """The feed chain: the hash of every verified entry up to `seq`, in order."""
    h = hashlib.blake2b(digest_size=HASH_LEN, person=_PERSON_FEED)
    h.update(prev + seq.to_bytes(8, "big") + vhash)
    return h.digest()


def refusal_marker(file_id: str, revision: int) -> bytes:
    """What stands for a refused version: in the feed chain at its seq, and
    as `prev` of the version that supersedes it (which no device can check
    against the refused one, so every device accepts it on its signature)."""
    h = hashlib.blake2b(digest_size=HASH_LEN, person=_PERSON_REFUSED)
    h.update(bytes.fromhex(file_id) + revision.to_bytes(8, "big"))
    return h.digest()


def sign_linked(key: nacl.signing.SigningKey, ring: Keyring, place: ManifestPlace,
                manifest: Manifest, link: Link) -> Manifest:
    """`manifest` with `link` and its signature: the signing step alone, for
    History.sign and for tools that drive the server without a device state."""
    linked = replace(manifest, link=link, signature=b"")
    return replace(linked, signature=key.sign(signed_message(ring, place, linked)).signature)


class OwnPastUnknown(ForkError):
    """A version signed as this device that this device has no record of
    signing. A server cannot forge one (the account key signs it), so
    either this folder's books were rolled back or copied (a `.sealsync/`
    restored from a backup, copied along with the folder, or a state.db
    replaced), or another holder of the account key used this device's id.
    The first is the likely one, and its cure is to join again as a new
    device, so the message says so rather than blaming the server alone."""

    def __init__(self, where: str, user_id: str) -> None:
        IntegrityError.__init__(  # not HistoryError's "the server is misbehaving" alone
            self, f"{where} is signed as this device, which has no record of making it: "
            "this folder's .sealsync/ was restored from a backup, copied from another "
            "folder or replaced, or the server is misbehaving. Nothing was applied. If "
            "the folder's books were restored or copied, move its .sealsync/ out of it and "
            f"join again as a new device: sealsync init --server URL --join {user_id} DIR; "
            "otherwise compare devices and contact the server's operator")


class History:
    """One device's verified view of its account's history.

    Thread-safe: uploads sign on worker threads while the engine verifies.
    """

    def __init__(self, state: State, ring: Keyring, user_id: str, device_id: str,
                 key: nacl.signing.SigningKey) -> None:
        self.state, self.ring, self.user_id, self.device_id = state, ring, user_id, device_id
        self.key = key
        self._lock = threading.RLock()

    # -- writing ------------------------------------------------------------
    def sign(self, place: ManifestPlace, manifest: Manifest) -> Manifest:
        """Link a new version into the history and sign it (before sealing)."""
        with self._lock:
            prev = ZERO
            if place.base_revision:
                base = self.state.verified(place.file_id, place.base_revision)
                refused = self.state.refused_top(place.file_id) == place.base_revision
                if base is None and refused:  # supersede a refused revision (engine.py)
                    base = Verified(place.file_id, place.base_revision,
                                    refusal_marker(place.file_id, place.base_revision), "", 0,
                                    None)
                if base is None:
                    raise IntegrityError(f"revision {place.base_revision} of file "
                                         f"{place.file_id} was never verified here: sync first")
                prev = base.hash
            counter = self.state.next_counter()
            seq, feed = self.state.feed_head()
            signed = sign_linked(self.key, self.ring, place, manifest,
                                 Link(prev, self.device_id, counter, seq, feed))
            self.state.add_sealed(Sealed(counter, place.file_id, place.revision,
                                         version_hash(self.ring, place, signed), "sealed"))
            return signed

    def settled(self, file_id: str, revision: int, accepted: bool) -> None:
        """The server decided our upload of (file, revision): remember it.

        A version we were told lost is never accepted later: a server that
        says "conflict" and commits it anyway is caught in `verify_entry`."""
        with self._lock:
            mine = self.state.last_sealed(file_id, revision)
            if mine is None:
                return
            self.state.set_sealed_status(mine.counter, "accepted" if accepted else "lost")
            if accepted:
                self._known(Verified(file_id, revision, mine.hash, self.device_id,
                                     mine.counter, None))

    # -- reading ------------------------------------------------------------
    def verify_entry(self, seq: int, file_id: str, revision: int,
                     manifest: Manifest | None) -> None:
        """Verify the next change-feed entry (in seq order) and record it.

        `manifest` is the version's manifest, already opened for exactly
        (file_id, revision); None when the server reports a bare delete,
        which no device signs, so it is refused."""
        with self._lock:
            last, head = self.state.feed_head()
            if seq <= last:  # read again (e.g. after an interrupted pass)
                seen = self.state.verified_at(seq)
                if seen is None or (seen.file_id, seen.revision) != (file_id, revision) \
                        or manifest is None or seen.hash != self._hash(file_id, revision,
                                                                        manifest):
                    raise FeedError(f"the change feed rewrote entry {seq}, which this device "
                                    f"had verified")
                return
            if seq != last + 1:
                raise FeedError(f"the change feed jumped from entry {last} to {seq}: entries "
                                f"were dropped or reordered")
            if manifest is None:
                raise FeedError(f"entry {seq} reports a change to file {file_id} that no "
                                f"device signed")
            v = self._check(file_id, revision, manifest, seq)
            self.state.append_feed(v, chain(head, seq, v.hash))

    def refuse(self, seq: int, file_id: str, revision: int, reason: str) -> None:
        """Skip the next feed entry, which cannot be verified (unsigned, signed
        by no key of the account, or sealed for another place), recording it
        and why. The chain takes a refusal marker at its seq: every device
        refusing the same entry keeps the same chain, and a device shown
        a valid version there instead differs (a fork, caught as such).
        Raises FeedError, and records nothing, if `seq` is not the next
        entry: a dropped or rewritten entry is the feed's fault, never skipped."""
        with self._lock:
            last, head = self.state.feed_head()
            if seq != last + 1:
                raise FeedError(f"the change feed jumped from entry {last} to {seq}: entries "
                                f"were dropped or reordered")
            self.state.refuse(seq, file_id, revision, reason,
                              chain(head, seq, refusal_marker(file_id, revision)))

    def verify_own(self, seq: int, file_id: str, revision: int) -> bool:
        """Verify the next feed entry without fetching it, if it is our own
        accepted upload coming back: we know exactly what we signed, so the
        chain takes the hash we recorded. False: use `verify_entry`.

        Sound because the chain binds that hash: had the server committed
        something else at (file, revision), our next link's feed hash would
        differ from every other device's, and they would call it a fork."""
        with self._lock:
            last, head = self.state.feed_head()
            mine = self.state.verified(file_id, revision)
            if seq != last + 1 or mine is None or mine.seq is not None \
                    or mine.device_id != self.device_id \
                    or revision != self.state.top_revision(file_id, in_feed=True) + 1:
                return False
            sealed = self.state.sealed(mine.counter)
            if sealed is None or sealed.status != "accepted" or sealed.hash != mine.hash:
                return False
            self.state.append_feed(replace(mine, seq=seq), chain(head, seq, mine.hash))
            return True

    def verify_head(self, file_id: str, revision: int, manifest: Manifest) -> None:
        """Check a version fetched outside the feed (a conflict's winner)."""
        with self._lock:
            self._check(file_id, revision, manifest, None)

    def verify_recorded(self, file_id: str, revision: int, manifest: Manifest) -> None:
        """Check an old version fetched for a restore: signed by the account
        and exactly the one this device verified at (file, revision).

        The envelope alone is not enough: a kept conflict loser is a valid,
        signed envelope for the same (file, revision), and a server could
        hand it back to have it committed as a new head."""
        with self._lock:
            known = self.state.verified(file_id, revision)
            if known is None:
                raise IntegrityError(f"revision {revision} of file {file_id} was never "
                                     f"verified on this device: sync first")
            if self._hash(file_id, revision, manifest) != known.hash:
                raise IntegrityError(f"the server served another version than the revision "
                                     f"{revision} this device verified (a conflict's loser?); "
                                     f"nothing was restored")

    def fingerprint(self) -> tuple[int, str]:
        """(last verified seq, chain hash): equal on two devices at the same seq
        iff they were shown the same history (compare them out of band)."""
        seq, head = self.state.feed_head()
        return seq, head.hex()

    # -- the checks -----------------------------------------------------------
    def _hash(self, file_id: str, revision: int, manifest: Manifest) -> bytes:
        place = ManifestPlace.for_download(self.user_id, file_id, revision)
        return verify_signed(self.key.verify_key, self.ring, place, manifest)

    def _check(self, file_id: str, revision: int, manifest: Manifest,
               seq: int | None) -> Verified:
        vhash = self._hash(file_id, revision, manifest)
        link = manifest.link
        assert link is not None
        where = f"file {file_id} revision {revision}"
        top = self.state.top_revision(file_id, in_feed=seq is not None)
        if seq is not None:  # a refused revision counts: the next one may follow it
            top = max(top, self.state.refused_top(file_id))
        if seq is not None and revision <= top or seq is None and revision < top:
            raise RollbackError(f"{where}: this device already verified revision {top}; "
                                f"the server went back (a rollback or a replay)")
        if seq is not None and revision != top + 1:
            raise FeedError(f"{where}: the change feed skipped revisions after {top}")
        before = self.state.verified(file_id, revision - 1) if revision > 1 else None
        if revision == 1 and link.prev != ZERO or before is not None and link.prev != before.hash:
            raise ForkError(f"{where} does not extend the revision before it that this device "
                            f"verified: the file's history was forked")
        v = Verified(file_id, revision, vhash, link.device_id, link.counter, seq)
        if link.device_id == self.device_id:
            mine = self.state.sealed(link.counter)
            if mine is None or mine.hash != vhash:
                raise OwnPastUnknown(where, self.user_id)
            if mine.status == "lost":
                raise FeedError(f"{where}: the server said this device's upload lost a "
                                f"race, then committed it")
        if seq is not None and (not link.feed_seq < seq
                                or self.state.feed_hash(link.feed_seq) != link.feed_hash):
            raise ForkError(f"{where}: its device had verified a different history up to "
                                f"entry {link.feed_seq} than this device: the server is "
                                f"showing devices different histories (a fork)")
        self._known(v)
        return v

    def _known(self, v: Verified) -> None:
        """One hash per (file, revision) and per (device, counter), ever."""
        same = self.state.verified(v.file_id, v.revision)
        if same is not None and same.hash != v.hash:
            raise ForkError(f"file {v.file_id} revision {v.revision}: the server served two "
                            f"different versions of one revision (a fork)")
        twin = self.state.verified_by_device(v.device_id, v.counter)
        if twin is not None and (twin.file_id, twin.revision) != (v.file_id, v.revision):
            raise DeviceCloned(f"device {v.device_id} signed two different versions with "
                               f"counter {v.counter} (file {twin.file_id} revision "
                               f"{twin.revision}, and this one): two copies of one device's "
                               "folder are uploading (a .sealsync/ copied to another "
                               "machine); each copy must join again as a device of its own "
                               "(docs/CLIENT.md, \"One pass at a time, and damaged books\")")
        if v.seq is None:
            self.state.add_verified(v)
