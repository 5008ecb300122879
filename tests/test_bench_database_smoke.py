"""The database benchmark keeps working (no timing assertions: machines are noisy)."""

from __future__ import annotations

import pytest
from bench import bench_database


def test_database_benchmark_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_database.main(quick=True)
    out = capsys.readouterr().out
    assert "batched insert" in out and "changes-feed scan" in out and "RSS:" in out
