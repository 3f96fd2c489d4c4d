"""ivr.stats: the benchmarks' one percentile and RSS reading."""

from __future__ import annotations

import pytest

from ivr.stats import percentile, percentile_or_none, rss_mb


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 50) == 51.0  # rank round(49.5) = 50 (to even), 0-based
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile(values, 95) == 95.0
    assert percentile([7.0], 99) == 7.0


def test_no_values_is_an_error_or_none() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 95)
    assert percentile_or_none([], 95) is None
    assert percentile_or_none([3.0, 1.0], 100) == 3.0


def test_rss_is_this_process() -> None:
    assert 5 < rss_mb() < 100_000
