"""The signed, hash-chained history (history.py), without a server: a list
plays the change feed, and each test bends it the way a hostile server would."""
from __future__ import annotations

from pathlib import Path

import pytest
from sealsync_client import AccountKeys, IntegrityError, Manifest, ManifestPlace
from sealsync_client.errors import DeviceCloned, FeedError, ForkError, HistoryError, RollbackError
from sealsync_client.history import History
from sealsync_client.state import State

USER = "0123456789abcdef0123456789abcdef"
F, G, H = "f0" * 16, "f1" * 16, "f2" * 16
KEYS = AccountKeys(bytes(range(32)))
RING = KEYS.root_keyring()

Entry = tuple[int, str, int, Manifest | None]  # seq, file id, revision, manifest


class Device:
    """One device's History, and how far it has read the feed."""

    def __init__(self, root: Path, device_id: str, keys: AccountKeys = KEYS) -> None:
        self.state = State(root)
        self.history = History(self.state, RING, USER, device_id, keys.signing_key())
        self.read = 0

    def sign(self, file_id: str, base: int, text: str = "x") -> Manifest:
        place = ManifestPlace.for_upload(USER, file_id, base)
        return self.history.sign(place, Manifest(f"{file_id[:4]}.txt", len(text), 0, 0o600,
                                                 "dev", inline=text.encode()))

    def commit(self, feed: list[Entry], file_id: str, base: int, text: str = "x") -> Manifest:
        """Sign, let the (honest) server append it, and hear it was accepted."""
        m = self.sign(file_id, base, text)
        feed.append((len(feed) + 1, file_id, base + 1, m))
        self.history.settled(file_id, base + 1, accepted=True)
        return m

    def pull(self, entries: list[Entry]) -> None:
        for seq, file_id, revision, m in entries:
            self.history.verify_entry(seq, file_id, revision, m)
            self.read = seq


@pytest.fixture
def ab(tmp_path: Path) -> tuple[Device, Device]:
    return Device(tmp_path / "a", "aa" * 16), Device(tmp_path / "b", "bb" * 16)


def test_an_honest_feed_verifies_and_both_devices_agree(ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    a.commit(feed, F, 0)
    a.pull(feed)
    b.pull(feed)
    b.commit(feed, F, 1, "edit")
    b.commit(feed, G, 0)
    a.pull(feed[1:])
    b.pull(feed[1:])
    a.commit(feed, F, 2, "again")  # links b's commits: a verified through entry 3
    a.pull(feed[3:])
    b.pull(feed[3:])
    assert a.history.fingerprint() == b.history.fingerprint()
    assert a.history.fingerprint()[0] == 4
    b.pull(feed)  # reading entries again is harmless when they are unchanged


def test_a_gap_or_a_reordering_in_the_feed_is_refused(ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    for f in (F, G, H):
        a.commit(feed, f, 0)
    with pytest.raises(FeedError, match="jumped from entry 0 to 2"):
        b.pull([feed[1]])  # entry 1 dropped
    with pytest.raises(FeedError, match="jumped"):
        b.pull([feed[0], feed[2], feed[1]])  # entries 2 and 3 swapped
    assert b.history.fingerprint()[0] == 1  # entry 1 was fine and stays verified
    b.pull(feed[1:])


def test_a_replayed_or_rolled_back_revision_is_refused(ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    a.commit(feed, F, 0, "one")
    a.commit(feed, F, 1, "two")
    b.pull(feed)
    old = feed[0]
    with pytest.raises(RollbackError, match="already verified revision 2"):
        b.pull([(3, F, 1, old[3])])  # revision 1 served again as a new entry
    with pytest.raises(RollbackError):
        b.history.verify_head(F, 1, old[3] or Manifest("x", 0, 0, 0, ""))
    with pytest.raises(FeedError, match="rewrote entry 2"):
        b.pull([(2, F, 1, old[3])])  # an entry already verified, served differently


def test_a_fork_is_detected_when_either_side_sees_the_others_later_commit(
        ab: tuple[Device, Device]) -> None:
    """The server hides a's commit from b (renumbering b's feed), so each
    lives in its own history. b's next commit names the prefix b verified,
    which differs from a's: a refuses it, and b refuses a's."""
    a, b = ab
    real: list[Entry] = []
    a.commit(real, F, 0)
    a.pull(real)
    b.pull(real)
    a.commit(real, F, 1, "only a sees this")  # real entry 2
    a.pull(real[1:])
    forked: list[Entry] = list(real[:1])
    b.commit(forked, G, 0)  # b's entry 2 is g@1
    b.pull(forked[1:])
    b.commit(forked, H, 0)  # signed after b verified 2 entries of *its* history
    # the server merges: a sees g@1 (fine: concurrent), then h@1
    merged = [(3, G, 1, forked[1][3]), (4, H, 1, forked[2][3])]
    a.pull(merged[:1])
    with pytest.raises(ForkError, match="different history up to entry 2"):
        a.pull(merged[1:])
    with pytest.raises(FeedError, match="rewrote entry 2"):
        b.pull(real[1:2])  # and b cannot be shown a's entry 2 either


def test_two_versions_of_one_revision_are_a_fork(ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    a.commit(feed, F, 0)
    a.pull(feed)
    b.pull(feed)
    theirs = b.sign(F, 1, "b's edit")  # both edit revision 1 ...
    mine = a.commit(feed, F, 1, "a's edit")  # ... the server accepts a's
    assert mine != theirs
    with pytest.raises(ForkError, match="two\\s+different versions"):
        a.history.verify_head(F, 2, theirs)  # and shows a b's as the head


def test_a_version_must_extend_the_one_before_it(ab: tuple[Device, Device],
                                                 tmp_path: Path) -> None:
    """c lives in a forked history with its own revision 1; its revision 2
    does not extend the revision 1 that b verified."""
    a, b = ab
    c = Device(tmp_path / "c", "cc" * 16)
    feed: list[Entry] = []
    a.commit(feed, F, 0, "a's first")
    b.pull(feed)
    c.commit([], F, 0, "c's first")
    with pytest.raises(ForkError, match="does not extend"):
        b.history.verify_head(F, 2, c.sign(F, 1))
    b.history.verify_head(F, 2, a.sign(F, 1))  # the real successor is fine


def test_the_server_cannot_commit_what_it_said_lost(ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    m = a.sign(F, 0)
    a.history.settled(F, 1, accepted=False)  # "conflict", says the server ...
    feed.append((1, F, 1, m))  # ... and commits it anyway
    with pytest.raises(FeedError, match="lost a\\s+race, then committed it"):
        a.pull(feed)
    b.pull(feed)  # b cannot know what a was told


def test_a_version_signed_as_this_device_that_it_never_made(
        ab: tuple[Device, Device], tmp_path: Path) -> None:
    a, _ = ab
    twin = Device(tmp_path / "twin", "aa" * 16)  # a copied device: same id
    feed: list[Entry] = []
    twin.commit(feed, F, 0)
    with pytest.raises(ForkError, match="signed as this device"):
        a.pull(feed)


def test_one_device_counter_is_used_once(ab: tuple[Device, Device], tmp_path: Path) -> None:
    a, b = ab
    twin = Device(tmp_path / "twin", "aa" * 16)
    feed: list[Entry] = []
    a.commit(feed, F, 0)
    twin.commit(feed, G, 0)  # same device id, counter 1 again
    # A copied device, not the server (only key holders sign): this entry
    # alone is refused, never the whole history (not a HistoryError).
    with pytest.raises(DeviceCloned, match="counter 1") as caught:
        b.pull(feed)
    assert not isinstance(caught.value, HistoryError)
    assert "join again" in str(caught.value)


def test_unsigned_deletes_and_foreign_signatures_are_refused(
        ab: tuple[Device, Device], tmp_path: Path) -> None:
    a, b = ab
    with pytest.raises(FeedError, match="no device signed"):
        b.pull([(1, F, 1, None)])
    mallory = Device(tmp_path / "m", "aa" * 16, AccountKeys(bytes(32)))
    with pytest.raises(IntegrityError):
        b.pull([(1, F, 1, mallory.sign(F, 0))])
    assert b.history.fingerprint()[0] == 0
    assert issubclass(RollbackError, HistoryError) and issubclass(HistoryError, IntegrityError)


def test_signing_needs_a_verified_base(ab: tuple[Device, Device]) -> None:
    a, _ = ab
    with pytest.raises(IntegrityError, match="never verified here"):
        a.sign(F, 3)


def test_history_survives_a_restart(tmp_path: Path) -> None:
    a = Device(tmp_path / "a", "aa" * 16)
    feed: list[Entry] = []
    a.commit(feed, F, 0)
    a.pull(feed)
    a.state.close()
    again = Device(tmp_path / "a", "aa" * 16)
    assert again.sign(F, 1).link is not None and again.sign(F, 1).link.counter == 3  # type: ignore[union-attr]
    with pytest.raises(RollbackError):
        again.pull([(2, F, 1, feed[0][3])])


def test_our_own_upload_coming_back_needs_no_fetch_and_a_lie_about_it_is_a_fork(
        ab: tuple[Device, Device]) -> None:
    a, b = ab
    feed: list[Entry] = []
    a.commit(feed, F, 0)
    b.commit(feed, G, 0)
    assert a.history.verify_own(1, F, 1)  # ours, accepted: verified from what we signed
    assert not a.history.verify_own(2, G, 1)  # b's: must be fetched and checked
    a.pull(feed[1:])
    b.pull(feed)
    a.sign(F, 1, "a's edit")
    a.history.settled(F, 2, accepted=True)  # the server tells a it won ...
    b.commit(feed, F, 1, "b's edit")  # ... but commits b's version as revision 2
    assert a.history.verify_own(3, F, 2)  # a cannot tell yet
    b.pull(feed[2:])
    a.commit(feed, H, 0)  # a's link carries a's feed hash, built on a's version
    with pytest.raises(ForkError, match="a fork"):
        b.pull(feed[3:])
