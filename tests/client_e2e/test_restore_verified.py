"""Issue 15, finding 5 (restore): a server that hands back a kept conflict
loser (a valid, signed envelope for the same file and revision) in place of
the revision this device verified gets nothing restored.

The loser is made the way a losing device makes one: device B signs and
seals its own edit on the same base revision that A's edit won. The hostile
server then serves those bytes as revision 2."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sealsync_client.errors import IntegrityError
from sealsync_client.folder import Folder
from sealsync_client.manifest import Manifest, ManifestPlace, seal_manifest
from sealsync_client.restore import restore_revision

from tests.client_e2e.conftest import settle

pytestmark = pytest.mark.e2e


def _loser(b: Folder, file_id: str) -> bytes:
    """B's signed, sealed edit on base 1: a valid envelope for revision 2."""
    engine = b.engine()
    place = ManifestPlace.for_upload(b.config.user_id, file_id, 1)
    text = b"the loser's content\n"
    signed = engine.history.sign(place, Manifest("notes.txt", len(text), 0, 0o100644, "b",
                                                 inline=text))
    return seal_manifest(b.keys.root_keyring(), place, signed)


def test_restore_refuses_a_conflict_loser_served_as_the_verified_revision(
        devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    a, b = devices
    (a.root / "notes.txt").write_text("one\n")
    settle(a, b)
    (a.root / "notes.txt").write_text("two\n")
    settle(a, b)
    (a.root / "notes.txt").write_text("three\n")
    settle(a, b)
    file_id = a.state.by_path("notes.txt").file_id
    loser = _loser(b, file_id)

    engine = a.engine()
    real_get_file, real_get_blob = a.api.get_file, a.api.get_blob
    served: dict[str, Any] = {}

    def get_file(fid: str, revision: int | None = None) -> dict[str, Any]:
        body = real_get_file(fid, revision)
        if fid == file_id and revision == 2:
            served["url"] = body["manifest_url"]
        return body

    def get_blob(url: str, byte_range: tuple[int, int] | None = None, **kw: Any) -> Any:
        return loser if url == served.get("url") else real_get_blob(url, byte_range, **kw)

    a.api.get_file, a.api.get_blob = get_file, get_blob  # type: ignore[method-assign]
    dest = a.root / "notes.txt"
    with pytest.raises(IntegrityError, match="another version than the revision 2"):
        restore_revision(engine, file_id, 2, dest, "notes.txt")
    assert dest.read_text() == "three\n"  # nothing was written

    a.api.get_file, a.api.get_blob = real_get_file, real_get_blob  # type: ignore[method-assign]
    restore_revision(engine, file_id, 2, dest, "notes.txt")  # the honest answer restores
    assert dest.read_text() == "two\n"
