"""S3: sizes, small copies, presigned URLs. Only the calls the code needs."""
from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


def _absent(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


def _precondition(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("412", "PreconditionFailed")


class Replaced(Exception):
    """The object is no longer the one that was checked (its ETag moved)."""


@dataclass(frozen=True)
class Stat:
    """An object's real size and ETag (which names these exact bytes)."""

    size: int
    etag: str


class Blobs:
    def __init__(self, s3: Any, bucket: str, url_ttl_s: int) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.url_ttl_s = url_ttl_s

    def size(self, key: str) -> int | None:
        """The object's real size, or None when it does not exist."""
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if _absent(exc):
                return None
            raise

    def stat(self, key: str) -> Stat | None:
        """Size and ETag in one HEAD, or None when the object does not exist."""
        try:
            got = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _absent(exc):
                return None
            raise
        return Stat(int(got["ContentLength"]), str(got["ETag"]))

    def sizes(self, keys: list[str]) -> list[int | None]:
        """Each key's real size (None: absent), HEADed in parallel."""
        if not keys:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
            return list(pool.map(self.size, keys))

    def missing(self, keys: list[str]) -> list[str]:
        """Those of `keys` that do not exist, checked in parallel."""
        return [key for key, size in zip(keys, self.sizes(keys), strict=True) if size is None]

    def copy(self, source: str, dest: str, if_match: str | None = None) -> None:
        """Server-side copy of a small object (a manifest): cost is bounded by
        the manifest limit, never by the file's size. With `if_match` (the
        ETag that was checked) S3 copies only those bytes
        (CopySourceIfMatch), and the copy's own ETag is compared too (moto
        ignores CopySourceIfMatch); either failing raises Replaced, after
        removing a wrong copy (no head can reference it yet)."""
        extra = {} if if_match is None else {"CopySourceIfMatch": if_match}
        try:
            got = self.s3.copy_object(Bucket=self.bucket, Key=dest,
                                      CopySource={"Bucket": self.bucket, "Key": source},
                                      **extra)
        except ClientError as exc:
            if if_match is not None and _precondition(exc):
                raise Replaced(source) from None
            raise
        # A single-part object's ETag is its MD5, and so is its copy's; a
        # multipart one's ("…-N") is not (a presigned PUT is single-part).
        copied = got.get("CopyObjectResult", {}).get("ETag")
        if if_match is not None and "-" not in if_match and copied != if_match:
            self.delete(dest)
            raise Replaced(source)

    def stream(self, key: str, block: int = 1024 * 1024,
               if_match: str | None = None) -> Iterator[bytes]:
        """The object's bytes, a block at a time (the commit hashes a bundle
        without holding it); nothing if it is gone. With `if_match`, only the
        object of that ETag: another raises Replaced."""
        extra = {} if if_match is None else {"IfMatch": if_match}
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        except ClientError as exc:
            if _absent(exc):
                return
            if if_match is not None and _precondition(exc):
                raise Replaced(key) from None
            raise
        try:
            yield from body.iter_chunks(block)
        finally:
            body.close()

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def presign_put(self, key: str, size: int, create_only: bool = False,
                    sha256: bytes | None = None) -> str:
        """A PUT URL bound to this key and exact length (AWS enforces the
        signed Content-Length; the commit handler re-checks it anyway).
        `create_only` signs `If-None-Match: *`: an existing chunk, which a
        committed head may reference, can never be overwritten. `sha256`
        (the digest the client declared) signs `x-amz-checksum-sha256`: S3
        refuses any other body, so whoever holds the URL can PUT only those
        bytes. A signed header must be sent as signed (SigV4), so the
        client sends exactly `put_headers(...)`."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentLength": size}
        if create_only:
            params["IfNoneMatch"] = "*"
        if sha256 is not None:
            params["ChecksumSHA256"] = base64.b64encode(sha256).decode()
        return str(self.s3.generate_presigned_url("put_object", ExpiresIn=self.url_ttl_s,
                                                  Params=params))

    @staticmethod
    def put_headers(create_only: bool, sha256: bytes | None = None) -> dict[str, str]:
        """The headers a PUT to `presign_put(..., create_only, sha256)` must carry."""
        out = {"If-None-Match": "*"} if create_only else {}
        if sha256 is not None:
            out["x-amz-checksum-sha256"] = base64.b64encode(sha256).decode()
        return out

    def presign_get(self, key: str, offset: int | None = None,
                    length: int | None = None) -> str:
        """A GET URL; with a range, `Range: bytes=offset-(offset+length-1)`
        is signed into it, so the URL works only with exactly that header
        (a reader that ignores the range fails, it never reads other bytes)."""
        params = {"Bucket": self.bucket, "Key": key}
        if offset is not None and length is not None:
            params["Range"] = f"bytes={offset}-{offset + length - 1}"
        return str(self.s3.generate_presigned_url("get_object", ExpiresIn=self.url_ttl_s,
                                                  Params=params))

    def list_older(self, prefix: str, before_epoch: float) -> Iterator[str]:
        """Keys under `prefix` last modified before `before_epoch`."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                if obj["LastModified"].timestamp() < before_epoch:
                    yield obj["Key"]

    # -- for the garbage collector (chalicelib/gc.py) -----------------------------
    def users_under(self, prefix: str) -> list[str]:
        """The user ids with any object under `prefix` (`chunks/`, `packs/`)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        return [p["Prefix"][len(prefix):].rstrip("/") for page in pages
                for p in page.get("CommonPrefixes", [])]

    def list_page(self, prefix: str, start_after: str,
                  limit: int) -> tuple[list[tuple[str, float, int, str]], bool]:
        """Up to `limit` objects under `prefix` after the key `start_after`:
        (key, last modified epoch, size, ETag), and whether more follow."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            params["StartAfter"] = start_after
        got = self.s3.list_objects_v2(**params)
        rows = [(o["Key"], o["LastModified"].timestamp(), int(o["Size"]),
                 str(o.get("ETag", "")).strip('"')) for o in got.get("Contents", [])]
        return rows, bool(got.get("IsTruncated"))

    def delete_if(self, key: str, etag: str) -> bool:
        """Delete the object only if it is still the one listed (`If-Match`):
        a collector run that stalled can never delete a chunk uploaded again
        under the same key since. False if it is gone, another object, or a
        concurrent write won (409). Needs s3:DeleteObject and s3:GetObject."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"')
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if _absent(exc) or code in ("PreconditionFailed", "412",
                                        "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def read_range(self, key: str, offset: int, length: int) -> bytes | None:
        """`length` bytes at `offset` (a blob of a pack), None if the object is gone."""
        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=key,
                                     Range=f"bytes={offset}-{offset + length - 1}")
        except ClientError as exc:
            if _absent(exc):
                return None
            raise
        data: bytes = got["Body"].read()
        return data

    def put_new(self, key: str, body: bytes) -> None:
        """A create-only PUT (`If-None-Match: *`): never over an existing object."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")

