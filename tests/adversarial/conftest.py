"""Fixtures of the adversarial tests: no child process outlives the test that started it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversarial.peers import kill_children, live_children


@pytest.fixture(autouse=True)
def _no_leftover_peers() -> Iterator[None]:
    before = live_children()
    yield
    kill_children(keep=before)
