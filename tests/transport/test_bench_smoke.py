"""Keeps ``bench/bench_blip.py`` working (figures are printed, never judged here)."""

from __future__ import annotations

import pytest
from bench import bench_blip

pytestmark = pytest.mark.timeout(60)


def test_blip_benchmark_runs_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_blip.main(quick=True)
    out = capsys.readouterr().out
    assert "raw websockets" in out
    assert "peer stops reading" in out
