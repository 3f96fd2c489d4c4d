"""Small figures the benchmarks print: a nearest-rank percentile and this process's RSS.

One place, so every bench reports a p95 the same way (they had six copies)."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0-100) of ``values``; ValueError when empty."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def percentile_or_none(values: Iterable[float], p: float) -> float | None:
    """As :func:`percentile`, None for no values (a JSON ``null`` in a bench report)."""
    ordered = sorted(values)
    return percentile(ordered, p) if ordered else None


def rss_mb() -> float:
    """This process's resident set size in MB (Linux ``/proc``; 0.0 elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
