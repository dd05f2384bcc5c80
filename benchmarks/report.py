"""latest.json's keys from the raw measurements, and the markdown table.
Pure functions: tested in tests/benchmarks/test_report.py."""
from __future__ import annotations

from typing import Any

TOOLS = ("sealsync", "rclone", "restic")

# (key, label, unit, lower is better) for the per-tool rows
PEER_ROWS = (
    ("initial_1gib_s", "initial sync, {big} MiB file", "s", True),
    ("initial_small_s", "initial sync, {small} small files (1-16 KiB)", "s", True),
    ("resync_1mib_bytes_sent", "bytes sent after a 1 MiB overwrite", "B", True),
    ("s3_puts_per_small_file", "S3 PUTs per small file", "", True),
    ("peak_rss_mb_1gib", "peak RSS syncing the {big} MiB file", "MiB", True),
    ("noop_small_s", "no-op pass over the {small} small files (rclone: `check`)", "s",
     True),
)


def per_tool(runs: dict[str, Any], pick: Any) -> dict[str, Any]:
    return {tool: pick(runs[tool]) for tool in TOOLS if tool in runs}


def peer_keys(peers: dict[str, Any]) -> dict[str, Any]:
    """The per-tool keys from benchmarks.peers.peer_runs()."""
    runs, n = peers["runs"], peers["small_count"]
    return {
        "initial_1gib_s": per_tool(runs["initial_big"], lambda r: round(r.seconds, 2)),
        "initial_small_s": per_tool(runs["initial_small"], lambda r: round(r.seconds, 2)),
        "resync_1mib_bytes_sent": per_tool(runs["resync"], lambda r: r.bytes_sent),
        "s3_puts_per_small_file": per_tool(
            runs["initial_small"], lambda r: round(r.s3.methods.get("PUT", 0) / n, 3)),
        "peak_rss_mb_1gib": per_tool(runs["initial_big"], lambda r: round(r.rss_mb, 1)),
        "batch_handler_ms": peers.get("batch_handler_ms") or None,
        # the per-1,000-files counts of the small-file sync
        "handler_invocations_per_1000_files":
            (peers.get("batch_handler_ms") or {}).get("invocations_per_1000_files"),
        "ddb_write_requests_per_1000_files":
            (peers.get("batch_handler_ms") or {}).get("ddb_writes_per_1000_files"),
        "noop_small_s": per_tool(runs.get("noop_small", {}), lambda r: round(r.seconds, 3)),
        "noop_floor_s": per_tool(runs.get("noop_floor", {}), lambda r: round(r.seconds, 3)),
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and unit == "B":
        return f"{value:,}"
    if isinstance(value, (int, float)):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) \
            or theirs == 0:
        return "n/a"
    x = ours / theirs
    return f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"


def single_rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, note) for the keys that have no peer figure."""
    cm, ct = r.get("commit_ms") or {}, r.get("contention") or {}
    push = r.get("push_ms") or {}
    floor = r.get("commit_floor_ms")
    rows = [
        ("client pipeline, 1 core (MB/s)", fmt(r.get("pipeline_mb_s")),
         f"bare AES-256-GCM {fmt(r.get('aead_limit_mb_s'))} MB/s; "
         f"ratio {fmt(r.get('pipeline_ratio'))}"),
        ("commit, 1 KiB, p50 / p99 (ms)",
         f"{fmt(cm.get('p50_1kib'))} / {fmt(cm.get('p99_1kib'))}",
         f"floor (lock + transaction) p50 {fmt(floor)} ms; p50 / floor "
         f"{ratio(cm.get('p50_1kib'), floor)}"),
        ("commit, 256 MiB, p50 / p99 (ms)",
         f"{fmt(cm.get('p50_256mib'))} / {fmt(cm.get('p99_256mib'))}", ""),
        ("polls per upload, push off (mean)", fmt(r.get("polls_per_upload_mean")),
         "target <= 1.0"),
        ("push latency p50 / p99 (ms)", f"{fmt(push.get('p50'))} / {fmt(push.get('p99'))}",
         str(push.get("reason", ""))),
        (f"contention: {ct.get('devices', 32)} devices on one file (decided/s)",
         fmt(ct.get("decided_per_s")),
         f"no contention {fmt(ct.get('floor_decided_per_s'))}/s; ratio "
         f"{ratio(ct.get('decided_per_s'), ct.get('floor_decided_per_s'))}; "
         f"max winners per round {ct.get('max_winners_per_round', 'n/a')}"),
        ("commit handler per batch of the small-file sync (ms)",
         fmt((r.get("batch_handler_ms") or {}).get("per_batch")),
         f"{fmt((r.get('batch_handler_ms') or {}).get('per_1000_files'))} ms per 1,000 files, "
         f"{(r.get('batch_handler_ms') or {}).get('batches', 'n/a')} batches (moto: an upper "
         "bound); `make cost` uses it"),
        ("commit handler invocations per 1,000 small files",
         fmt(r.get("handler_invocations_per_1000_files")),
         "the small-file sync's Lambda runs (one per SQS batch of bundles)"),
        ("DynamoDB write requests per 1,000 small files",
         fmt(r.get("ddb_write_requests_per_1000_files")),
         f"API and commit handler; reads "
         f"{fmt((r.get('batch_handler_ms') or {}).get('ddb_reads_per_1000_files'))}"),
        ("cold `import app` (ms, median of 5)", fmt(r.get("cold_import_ms")), ""),
        ("deployment package (MB)", fmt(r.get("zip_mb")), ""),
        ("client peak RSS, client_1gib.py (MiB)", fmt(r.get("client_rss_mb_1gib")),
         f"{(r.get('meta') or {}).get('client_1gib_size_mib', '?')} MiB file"),
        ("re-sent after a kill at 50%, resume.py (% of the file)",
         fmt(r.get("resume_resent_pct")),
         f"{fmt((r.get('resume_detail') or {}).get('resume_resent_bytes'), 'B')} bytes of a "
         f"{(r.get('meta') or {}).get('client_1gib_size_mib', '?')} MiB file; target <= 5%"),
    ]
    return rows


def markdown(r: dict[str, Any]) -> str:
    """The table printed at the end of a run and written to latest.md."""
    meta = r.get("meta") or {}
    big, small = meta.get("big_mib", "?"), meta.get("small_count", "?")
    lines = [f"# make bench{' QUICK=1' if meta.get('quick') else ''}: "
             f"{meta.get('finished', '')}", "",
             f"{meta.get('cpus', '?')} CPUs, load {meta.get('loadavg', '?')}; "
             f"seed {meta.get('seed', '?')}; wall {meta.get('wall_s', '?')} s; "
             f"{meta.get('peers', '')}", "",
             "| figure | sealsync | rclone | restic | sealsync / rclone | sealsync / restic |",
             "|---|---|---|---|---|---|"]
    for key, label, unit, _ in PEER_ROWS:
        v = r.get(key) or {}
        ours = v.get("sealsync")
        name = label.format(big=big, small=small) + (f" ({unit})" if unit else "")
        lines.append(f"| {name} | {fmt(ours, unit)} | {fmt(v.get('rclone'), unit)} | "
                     f"{fmt(v.get('restic'), unit)} | {ratio(ours, v.get('rclone'))} | "
                     f"{ratio(ours, v.get('restic'))} |")
    lines += ["", "| figure | sealsync | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in single_rows(r)]
    if r.get("local_stack_txn_ms"):
        t = r["local_stack_txn_ms"]
        lines += ["", f"Local stack only: one commit transaction in moto at {t['items']} "
                  f"table items: {fmt(t['whole_table_copy'])} ms with moto's whole-table "
                  f"copy, {fmt(t['touched_items_only'])} ms with the snapshot patch "
                  f"({ratio(t['whole_table_copy'], t['touched_items_only'])})."]
    floor = r.get("noop_floor_s") or {}
    if floor:
        lines += ["", f"No-op pass: the same over the one-file big folder, i.e. the part "
                  f"that does not grow with the file count (start-up, key file, one feed "
                  f"page; for rclone one listing): sealsync {fmt(floor.get('sealsync'))} s, "
                  f"rclone check {fmt(floor.get('rclone'))} s. rclone check compares sizes "
                  f"only (a crypt remote shares no hash with the local files)."]
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def missing_keys(r: dict[str, Any], required: tuple[str, ...]) -> list[str]:
    """Required keys with no measured value (None, or an object holding a
    None) and no "reason" saying why."""
    def empty(v: Any) -> bool:
        if isinstance(v, dict):
            return "reason" not in v and any(empty(x) for x in v.values())
        return v is None
    return [k for k in required if k not in r or empty(r[k])]
