"""The query benchmark keeps working (no timing assertions: machines are noisy)."""

from __future__ import annotations

import pytest
from bench import bench_query


def test_query_benchmark_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_query.main(quick=True)
    out = capsys.readouterr().out
    for words in ("point lookup, indexed", "range lookup, indexed", "live query at", "full-text"):
        assert words in out
