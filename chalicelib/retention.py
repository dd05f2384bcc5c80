"""The `retention` job (chalicelib/jobs.py, daily): superseded and deleted
versions older than the retention window expire (the rule: core/retention.py;
the items: adapters/retention_store.py; docs/DESIGN.md "Retention rule").

Per file, in one transaction per up to 96 revisions: each expiring revision
is marked expired and loses its chunk list, conditioned on not being
expired yet, and the usage TOTAL drops by its metered size. So a schedule
that fires twice, or two runs at once, take each revision off once.

Before that transaction, the chunks only the expiring revisions named leave
the chunk index, and the user's next collection cycle is asked to look at
every object: the collector (chalicelib/gc.py) then dooms what no retained
revision needs, with its usual grace, fence and scan. Either step may run
without the other (a crash between them) and nothing is lost: an index
entry dropped too early costs the collector a rescue (its scan puts it
back), one left behind costs storage until the next run.

Why this is safe against the collector: no revision loses its chunk list
while the user's collection is between a doom and its deletes (the job
skips such a user's files, and the transaction checks it): the scan counts
on every revision that existed at the doom still naming its chunks, since
a commit that found a chunk known trusts that a revision names it.

Why this is safe against a commit running at the same time:
* a commit that supersedes the head meanwhile only makes more revisions
  expirable later; the head is never touched, and the transaction checks
  that the file's head is past every revision it expires;
* a commit that dedups against a chunk of a revision being expired reads
  the collector's fence before the chunk index and is conditioned on it
  (chalicelib/pack_commit.py), so the collector can never delete a chunk
  that commit's revision names: either the commit lands before the doom
  (and the scan sees its revision) or it loses its fence and checks again.

Bounded: a time budget per run (the jobs Lambda has 30 s) and a cursor
(user, file) kept in the table, so a big account spreads over several runs.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .adapters.retention_store import MAX_PER_TRANSACTION
from .config import Runtime
from .core import retention as core
from .core.gc import DELETE, SCAN

log = logging.getLogger("sealsync.retention")
FILES_PER_PAGE = 200
RUN_SECONDS = 20.0  # of the jobs Lambda's 30 s


@dataclass
class Tally:
    users: int = 0
    files: int = 0
    expired: int = 0
    bytes_freed: int = 0
    unindexed: int = 0
    lost_races: int = 0  # a transaction another run (or a moved head) cancelled
    collecting: int = 0  # files left for the next run: the collector was mid-cycle
    finished: int = 0  # 1: the run reached the last user

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def expire(rt: Runtime, now: int, seconds: float = RUN_SECONDS,
           clock: Callable[[], float] = time.monotonic) -> dict[str, int]:
    """The job: from where the last run stopped, every user's files, until
    the time budget is spent. Returns what it did (also logged)."""
    tally = Tally()
    window = core.window_s(rt.settings.retention_days)
    if window is None:  # 0 days: keep forever
        tally.finished = 1
        return tally.as_dict()
    deadline = clock() + seconds
    users = sorted({s.user_id for s in rt.billing.all()})
    start_user, start_file = rt.retention.cursor()
    todo = [u for u in users if u >= start_user]
    for user in todo:
        stopped = _expire_user(rt, user, start_file if user == start_user else "", window,
                               now, tally, lambda: clock() >= deadline)
        if stopped is not None:  # out of time: go on from here next run
            rt.retention.save_cursor(user, stopped)
            break
        tally.users += 1
    else:
        rt.retention.save_cursor("", "")
        tally.finished = 1
    log.info("retention: %s", tally.as_dict())
    return tally.as_dict()


def _expire_user(rt: Runtime, user: str, after: str, window: int, now: int, tally: Tally,
                 out_of_time: Callable[[], bool]) -> str | None:
    """Every file of the user after `after`; the last file done when time
    ran out (None: the user is done)."""
    asked: set[str] = set()  # the collector is asked for a full cycle once per user
    while True:
        files, nxt = rt.gc.files_page(user, after, FILES_PER_PAGE)
        for file_id in files:
            if out_of_time():
                return after
            expire_file(rt, user, file_id, window, now, tally, asked)
            after = file_id
        if nxt is None:
            return None


def expire_file(rt: Runtime, user: str, file_id: str, window: int, now: int,
                tally: Tally, asked: set[str] | None = None) -> None:
    """Expire what the rule says of one file's revisions. `asked`: users
    whose collector this run already asked for a full cycle."""
    tally.files += 1
    revisions = rt.retention.revisions(user, file_id)
    doomed = core.expiring(revisions, window, now)
    if not doomed:
        return
    head = max(r.revision for r in revisions)
    if rt.gc.state(user)[0].phase in (SCAN, DELETE):
        tally.collecting += 1  # its scan must see every revision as at the doom: next run
        return
    if asked is None or user not in asked:  # first: a crash later costs a cycle, not a leak
        rt.gc.want_full_cycle(user, now)
        if asked is not None:
            asked.add(user)
    chunks = rt.retention.chunk_lists(user, file_id)
    going = {r.revision for r in doomed}
    gone = core.unindexed((chunks.get(r, ()) for r in going),
                          (c for r, c in chunks.items() if r not in going))
    rt.retention.unindex(user, gone)
    tally.unindexed += len(gone)
    for at in range(0, len(doomed), MAX_PER_TRANSACTION):
        group = doomed[at:at + MAX_PER_TRANSACTION]
        if rt.retention.expire(user, file_id, head, group, now):
            freed = core.freed(group)
            tally.expired += freed.versions
            tally.bytes_freed += freed.bytes
        else:
            tally.lost_races += 1  # expired by another run meanwhile: the next run re-reads
