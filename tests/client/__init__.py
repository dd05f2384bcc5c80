"""Client tests. They import the client package as `sealsync_client`, the name it
ships under; it lives in clients/, beside the server, never inside it."""
from __future__ import annotations

import sys
from pathlib import Path

_CLIENTS = str(Path(__file__).resolve().parents[2] / "clients")
if _CLIENTS not in sys.path:
    sys.path.insert(0, _CLIENTS)
