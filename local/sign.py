"""Device signatures for hand-driven protocol sessions (docs/walkthrough.md):
what a real client computes with its keys, as a tiny command line.

    python -m local.sign seed                          a random Ed25519 seed (hex)
    python -m local.sign public SEED                   its public key (hex)
    python -m local.sign enrol USER ACCOUNT_SEED DEVICE_SEED
                                                       POST /v1/devices's key fields (JSON)
    python -m local.sign entry USER DEVICE_SEED FILE BASE MANIFEST_PATH [CHUNK_ID...]
                                                       a version's signature (hex)
    python -m local.sign tombstone USER DEVICE_SEED FILE BASE
                                                       a server tombstone's signature (hex)

The messages are chalicelib/core/signatures.py's (docs/FORMAT.md section 13).
"""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from local.apiclient import Device, enrolment, public_key, sign_entry


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    verb, args = argv[0], argv[1:]
    if verb == "seed":
        print(secrets.token_hex(32))
    elif verb == "public":
        print(public_key(bytes.fromhex(args[0])))
    elif verb == "enrol":
        user, account, device = args
        print(json.dumps(enrolment(user, bytes.fromhex(account), bytes.fromhex(device))))
    elif verb in ("entry", "tombstone"):
        user, seed, file_id, base = args[:4]
        dev = Device(user, "", "", "", b"", bytes.fromhex(seed))
        manifest = Path(args[4]).read_bytes() if verb == "entry" else b""
        print(sign_entry(dev, file_id, int(base), manifest, args[5:],
                         tombstone=verb == "tombstone"))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
