"""Client end to end: real folders on two devices against the local stack."""
import sys
from pathlib import Path

_CLIENTS = str(Path(__file__).resolve().parents[2] / "clients")
if _CLIENTS not in sys.path:
    sys.path.insert(0, _CLIENTS)
