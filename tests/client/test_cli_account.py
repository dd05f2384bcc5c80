"""The usage report's text: lines and chart from a server answer (pure)."""
from __future__ import annotations

from sealsync_client.cli_account import bar, human, render_usage

DAY = 86400
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z


def answer(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "from": T0, "to": T0 + 31 * DAY, "until": T0 + 3 * DAY, "stored_bytes": 2_000_000,
        "versions_total": 7, "byte_hours": 3.6e9, "gb_months": 0.0046, "versions": 7,
        "put_requests": 9, "get_requests": 4, "egress_bytes": 1_500_000,
        "quota_bytes": 50 * 1024**3, "estimated_cents": 1,
        "daily": [{"day": T0 + i * DAY, "byte_seconds": b * DAY, "stored_bytes": b, "puts": 0,
                   "gets": 0, "egress": 0} for i, b in enumerate((0, 1_000_000, 2_000_000))]}
    body.update(over)
    return body


def test_the_report_says_what_was_used_and_charts_each_day() -> None:
    text = render_usage(answer())
    lines = text.splitlines()
    assert lines[0] == "Usage 2025-12-01 to 2025-12-03 (so far)"
    assert "2.0 MB in 7 versions" in text and "9 requests, 7 versions" in text
    assert "4 requests, 1.5 MB" in text and "$0.01 so far" in text
    chart = lines[-3:]
    assert chart[0].startswith("  12-01 ") and chart[0].rstrip().endswith("0 B")
    assert chart[2].count("█") == 40 and chart[1].count("█") == 20


def test_bars_and_sizes() -> None:
    assert bar(0, 10) == "" and bar(1, 0) == ""
    assert bar(10, 10, 4) == "████" and bar(1, 80, 10) == "▏"
    assert [human(n) for n in (0, 999, 1000, 1_500_000, 10**13)] == [
        "0 B", "999 B", "1.0 kB", "1.5 MB", "10.0 TB"]
