"""`python -m local.stack --presign-endpoint URL`: presigned URLs name URL
(benchmarks put a byte-counting proxy there); every other S3 call still goes
to the stack's own endpoint."""
from __future__ import annotations

from urllib.parse import urlsplit

from chalicelib.config import Runtime
from local.options import parse_args
from local.stack import _presign_via


def test_the_option_is_parsed() -> None:
    assert parse_args([]).presign_endpoint is None
    opts = parse_args(["--presign-endpoint", "http://127.0.0.1:9999"])
    assert opts.presign_endpoint == "http://127.0.0.1:9999"


def test_presigned_urls_name_the_other_endpoint(fast_rt: Runtime) -> None:
    before = urlsplit(fast_rt.blobs.presign_put("staging/u/x", 10))
    _presign_via(fast_rt, "http://127.0.0.1:9999")
    put = urlsplit(fast_rt.blobs.presign_put("staging/u/x", 10))
    get = urlsplit(fast_rt.blobs.presign_get("chunks/u/y"))
    assert put.netloc == get.netloc == "127.0.0.1:9999"
    assert put.netloc != before.netloc
    assert put.path == before.path  # same bucket and key, path style
    # the app's own calls still reach the store
    fast_rt.blobs.put("staging/u/x", b"0123456789")
    assert fast_rt.blobs.size("staging/u/x") == 10
