"""Opening a folder runs Argon2id (64-256 MiB) before anything is sealed or
sent. The heavy libraries load after it, on first use, so the client's peak
memory is the larger of the two, not their sum (docs/CLIENT.md, "Memory")."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("requests", "urllib3", "cryptography", "pyfastcdc", "sqlite3")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def test_the_upload_modules_load_no_heavy_library_on_import() -> None:
    assert loaded_after("import sealsync_client.transfer, sealsync_client.keyfile") == set()


def test_each_heavy_library_loads_on_first_use() -> None:
    assert loaded_after("from sealsync_client.api import Api; Api('http://127.0.0.1:9')") \
        >= {"requests", "urllib3"}
    assert "cryptography" in loaded_after(
        "from sealsync_client import crypto; crypto.seal(bytes(32), b'C', b'x', b'')")
    assert "pyfastcdc" in loaded_after(
        "from sealsync_client.chunking import Chunker; Chunker(bytes(32))")
