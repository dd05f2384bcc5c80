"""`sealsync usage DIR`: what the account used this month, with a small
text chart of the bytes stored at the end of each day (docs/ACCOUNT.md).

Registered on `sealsync` by cli.py; rendering is a pure function of the
server's answer (GET /v1/account/usage) so it is tested without a server.
"""
from __future__ import annotations

import time
from typing import Any

import click

BAR_WIDTH = 40
BLOCKS = " ▏▎▍▌▋▊▉█"


def human(n: float) -> str:
    """Bytes for people: 1.5 MB (powers of 1,000, as the prices are quoted in GB)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def bar(value: float, top: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of `value` on a scale of `top`, in eighths of a cell."""
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value / top * width * 8))
    return "█" * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")


def _day(epoch: int) -> str:
    return time.strftime("%m-%d", time.gmtime(epoch))


def render_usage(u: dict[str, Any]) -> str:
    """The usage as a few lines and a per-day chart of the average bytes stored."""
    start, until = time.gmtime(u["from"]), time.gmtime(max(u["from"], u["until"] - 1))
    running = u["until"] < u["to"]
    quota = u.get("quota_bytes") or 0
    share = f", {100 * u['stored_bytes'] / quota:.1f} % of the {human(quota)} quota" \
        if quota else ""
    lines = [
        f"Usage {time.strftime('%Y-%m-%d', start)} to {time.strftime('%Y-%m-%d', until)}"
        + (" (so far)" if running else ""),
        f"  stored now   {human(u['stored_bytes'])} in {u['versions_total']} versions{share}",
        f"  storage      {u['byte_hours'] / 1e9:.3f} GB-hours ({u['gb_months']:.6f} GB-months)",
        f"  uploads      {u['put_requests']} requests, {u['versions']} versions committed",
        f"  downloads    {u['get_requests']} requests, {human(u['egress_bytes'])}",
        f"  cost         ${u['estimated_cents'] / 100:.2f}" + (" so far" if running else ""),
    ]
    days = u.get("daily") or []
    if days:
        levels = [(d["day"], d["stored_bytes"]) for d in days]
        top = max(level for _, level in levels)
        lines.append("  stored per day (at the day's end):")
        for day, level in levels:
            lines.append(f"  {_day(day)} {bar(level, top):<{BAR_WIDTH}} {human(level)}")
    return "\n".join(lines)


@click.command()
@click.option("--from", "start", type=int, help="period start, epoch seconds (default: "
              "the start of this month)")
@click.option("--to", "end", type=int, help="period end, epoch seconds")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def usage(start: int | None, end: int | None, as_json: bool, folder_dir: str) -> None:
    """What the account used and what it costs, this month, as the server counts it."""
    from .cli import _emit, _errors, _opened  # cli.py registers this command: no cycle

    with _errors(), _opened(folder_dir) as folder:
        got = folder.api.usage(start, end)
        _emit(as_json, got, render_usage(got))
