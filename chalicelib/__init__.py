"""Sealsync server: the truth system for end-to-end encrypted file sync.

`core` is pure (no I/O); `adapters` are thin wrappers over S3, DynamoDB and
Redis; `commit` wires them into the pipeline the S3 event handler runs.
"""
