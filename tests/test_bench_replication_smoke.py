"""The replication benchmark keeps working (no timing assertions: machines are noisy)."""

from __future__ import annotations

import pytest
from bench import bench_replication


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_replication_benchmark_quick(capsys: pytest.CaptureFixture[str]) -> None:
    bench_replication.main(quick=True)
    out = capsys.readouterr().out
    assert "ws://" in out and "wss://" in out and "blob pushed" in out
    assert "last tenth" in out and "replicators pushing" in out and "peak RSS" in out
