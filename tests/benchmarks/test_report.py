"""The bench driver's own logic: percentiles, the keys built from runs, the
missing-key check, and the table."""
from __future__ import annotations

from collections import Counter

from benchmarks.commit import pcts
from benchmarks.commit_latency import percentile
from benchmarks.peers import Run
from benchmarks.proxy import Counts
from benchmarks.report import fmt, markdown, missing_keys, peer_keys, ratio


def run(seconds: float, sent: int, puts: int = 0, api: int = 0) -> Run:
    return Run(seconds, 50.0, Counts(sent, sent, Counter({"PUT": puts})),
               Counts(api, 0, Counter()))


def test_percentile_is_nearest_rank_of_measured_values() -> None:
    s = [float(x) for x in range(1, 101)]
    assert percentile(s, 50) == 50.0
    assert percentile(s, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert pcts([3.0, 1.0, 2.0]) == {"p50": 2.0, "p99": 3.0, "n": 3}


def test_peer_keys_per_tool() -> None:
    runs = {"initial_big": {"sealsync": run(10, 100), "rclone": run(20, 90),
                            "restic": run(30, 95)},
            "resync": {"sealsync": run(1, 2000, api=500), "rclone": run(2, 9000),
                       "restic": run(3, 1000)},
            "initial_small": {"sealsync": run(5, 1, puts=180), "rclone": run(6, 1, puts=100),
                              "restic": run(7, 1, puts=5)}}
    k = peer_keys({"runs": runs, "small_count": 100})
    assert k["initial_1gib_s"] == {"sealsync": 10, "rclone": 20, "restic": 30}
    # sealsync's bytes are its S3 bytes plus its API bytes
    assert k["resync_1mib_bytes_sent"] == {"sealsync": 2500, "rclone": 9000, "restic": 1000}
    assert k["s3_puts_per_small_file"] == {"sealsync": 1.8, "rclone": 1.0, "restic": 0.05}


def test_missing_keys_accepts_only_measured_or_explained() -> None:
    r = {"a": 1.0, "b": None, "c": {"p50": 1, "p99": None},
         "d": {"p50": None, "reason": "not built yet"}, "e": {"x": {"y": 2}}}
    assert missing_keys(r, ("a", "b", "c", "d", "e", "f")) == ["b", "c", "f"]


def test_formatting_and_ratios() -> None:
    assert fmt(None) == "n/a"
    assert fmt(1234567, "B") == "1,234,567"
    assert fmt(1234.4) == "1,234"
    assert fmt(0.0421) == "0.0421"
    assert fmt(42.26) == "42.3"
    assert ratio(2.0, 4.0) == "0.50x"
    assert ratio(4_400_000, 1_074_000_000) == "0.0041x"
    assert ratio(1.0, 0) == "n/a"
    assert ratio(None, 3.0) == "n/a"


def test_the_table_puts_each_peer_beside_ours() -> None:
    r = {"initial_1gib_s": {"sealsync": 10.0, "rclone": 20.0, "restic": 5.0},
         "push_ms": {"p50": None, "p99": None, "reason": "no push yet"},
         "contention": {"decided_per_s": 8.0, "floor_decided_per_s": 16.0,
                        "max_winners_per_round": 1, "devices": 32},
         "meta": {"big_mib": 1024, "small_count": 2000, "quick": True}}
    md = markdown(r)
    assert "make bench QUICK=1" in md
    assert "| initial sync, 1024 MiB file (s) | 10.0 | 20.0 | 5 | 0.50x | 2.00x |" in md
    assert "no push yet" in md
    assert "ratio 0.50x; max winners per round 1" in md
    assert "2000 small files" in md
