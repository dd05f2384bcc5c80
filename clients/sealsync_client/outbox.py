"""Sending a pass's local changes as batches (docs/DESIGN.md, "Batches").

A pass's uploads and deletes go out in batches of up to `MAX_ENTRIES`
versions: each batch is prepared (read, chunked, hashed, signed and
sealed) on a thread pool, then sent as one request, the chunks the server
lacks, one bundle and one long poll. The long poll of a batch waits until
the next batch is sent (the server commits one while this side works on
the other), so memory holds at most two batches, not the pass. A failure that concerns one file
(it changed, cannot be read, cannot be named) is that file's result; a
batch the server refuses as a whole is each of its files' result; losing
the server or the login, or a server that answers for other entries than
it was sent, ends the pass, after everything already answered was handed
back.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .api import AuthError, HomeUnavailable, OverQuota, PaymentRequired, ServerUnreachable
from .errors import IntegrityError
from .fingerprint import Fingerprint
from .transfer import Prepared, SentBatch, Transfer

K = TypeVar("K")
Result = dict[str, Any] | Exception

# Under the server's caps (chalicelib/core/requests.py): 1,000 entries,
# 8,192 chunk references, 64 MiB of manifests, a 2 MiB request body.
MAX_ENTRIES = 1000
MAX_CHUNK_REFS = 8192
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
# end the pass (engine.FATAL)
_FATAL = (ServerUnreachable, AuthError, IntegrityError, PaymentRequired, HomeUnavailable)


@dataclass(frozen=True)
class Upload:
    """A planned upload: `rel` as revision base + 1 of `file_id`, named
    `stored` in its manifest."""

    rel: str
    stored: str
    fp: Fingerprint
    file_id: str
    base: int
    renamed_from: str | None = None


def send(transfer: Transfer, work: Sequence[tuple[K, Callable[[], Prepared]]],
         parallel: int) -> Iterator[list[tuple[K, Result]]]:
    """Prepare and send `work` in batches; yields each batch's (key, result).

    Pipelined by one batch: a batch's verdicts are awaited only after the
    next batch was prepared and sent, so the server commits one while this
    side prepares, sends and settles the other (measured: the server's
    commit was two thirds of a pass of small files). At most two batches
    are held at once."""
    in_flight: tuple[list[tuple[K, Prepared]], SentBatch] | None = None
    for start in range(0, len(work), MAX_ENTRIES):
        group = work[start:start + MAX_ENTRIES]
        with ThreadPoolExecutor(parallel, thread_name_prefix="sealsync-seal") as pool:
            futures = [(key, pool.submit(_prepared, prepare)) for key, prepare in group]
            ready = [(key, future.result()) for key, future in futures]
        failed: list[tuple[K, Result]] = [(k, p) for k, p in ready if isinstance(p, Exception)]
        if failed:
            yield failed
        batches = deque(split([(k, p) for k, p in ready if isinstance(p, Prepared)]))
        while batches:
            batch = batches.popleft()
            try:
                sent = transfer.send_batch([p for _, p in batch])
            except _FATAL:
                if in_flight is not None:  # what the server already has is settled first
                    yield _answers(transfer, *in_flight)
                raise
            except OverQuota as exc:  # uploads refused; deletes always pass: resend them
                deletes = [(k, p) for k, p in batch if p.tombstone]
                if deletes and len(deletes) < len(batch):
                    batches.appendleft(deletes)
                    batch = [(k, p) for k, p in batch if not p.tombstone]
                yield [(k, exc) for k, _ in batch]
                continue
            except Exception as exc:  # the batch as a whole was refused
                yield [(k, exc) for k, _ in batch]
                continue
            if in_flight is not None:
                yield _answers(transfer, *in_flight)
            in_flight = (batch, sent)
    if in_flight is not None:
        yield _answers(transfer, *in_flight)


def _answers(transfer: Transfer, batch: list[tuple[K, Prepared]],
             sent: SentBatch) -> list[tuple[K, Result]]:
    """A sent batch's verdicts; a refusal of the batch as a whole is each
    of its files' result."""
    try:
        results: list[Result] = list(transfer.wait_for(sent))
    except _FATAL:
        raise
    except Exception as exc:
        results = [exc] * len(batch)
    return [(k, r) for (k, _), r in zip(batch, results, strict=True)]


def _prepared(prepare: Callable[[], Prepared]) -> Prepared | Exception:
    try:
        return prepare()
    except _FATAL:
        raise
    except Exception as exc:
        return exc


def split(ready: list[tuple[K, Prepared]]) -> Iterator[list[tuple[K, Prepared]]]:
    """Cut prepared versions into batches within the chunk and bundle caps."""
    batch: list[tuple[K, Prepared]] = []
    refs = size = 0
    for key, p in ready:
        if batch and (refs + len(p.spans) > MAX_CHUNK_REFS
                      or size + len(p.envelope) > MAX_BUNDLE_BYTES):
            yield batch
            batch, refs, size = [], 0, 0
        batch.append((key, p))
        refs += len(p.spans)
        size += len(p.envelope)
    if batch:
        yield batch
