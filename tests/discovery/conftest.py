"""Discovery tests stay on loopback: every zeroconf of the test process, and of the peers it
starts, is bound to 127.0.0.1 (explicitly, and through ``$COUCHLITE_DISCOVERY_INTERFACES`` for
anything that names no interface). Other processes on this machine may advertise on loopback
too, so each test looks only for the service names it made up itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

LOOPBACK = ["127.0.0.1"]
#: bound on every discovery wait of a test (never a timing assertion)
FIND_TIMEOUT_S = 15.0


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COUCHLITE_DISCOVERY_INTERFACES", "127.0.0.1")
    yield


@pytest.fixture
def service_name() -> str:
    """A name no other test (or process) advertises."""
    return f"test-{uuid.uuid4().hex[:12]}"
