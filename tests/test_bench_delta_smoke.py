"""The delta-sync benchmark keeps working (no timing assertions: machines are noisy)."""

from __future__ import annotations

import pytest
from bench import bench_delta


def test_delta_benchmark_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_delta.main(quick=True)
    out = capsys.readouterr().out
    assert "full bodies" in out and "delta sync" in out and "bytes saved" in out
    assert "(50 revs as deltas)" in out
