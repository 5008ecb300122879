"""Fixtures of the listener tests: a stand-in for the replication engine's passive session.

The stand-in (``stub_sessions``) replaces ``PassiveSession`` so that the listener's own behaviour
can be tested deterministically: it answers ``echo`` requests and lets the client switch its
``is_busy`` flag with a ``setBusy`` request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from couchlite.blip import Message
from couchlite.listener import listener as listener_module
from couchlite.listener.config import ListenerSettings
from couchlite.transport.blip_connection import BlipConnection, Reply


@dataclass
class StubSession:
    connection: BlipConnection
    allow_push: bool
    busy: bool = False
    attached: bool = False
    closed: int = 0

    @property
    def is_busy(self) -> bool:
        return self.busy

    def attach(self) -> None:
        self.attached = True
        self.connection.register_handler("echo", self._echo)
        self.connection.register_handler("setBusy", self._set_busy)

    async def _echo(self, message: Message) -> Reply:
        return Reply(message.properties, message.body)

    async def _set_busy(self, message: Message) -> Reply:
        self.busy = message.properties.get("busy") == "1"
        return Reply()

    async def close(self) -> None:
        self.closed += 1


@dataclass
class StubRegistry:
    sessions: list[StubSession] = field(default_factory=list)
    settings: list[ListenerSettings] = field(default_factory=list)


@pytest.fixture
def stub_sessions(monkeypatch: pytest.MonkeyPatch) -> StubRegistry:
    registry = StubRegistry()

    def make_factory(settings: ListenerSettings) -> Callable[[BlipConnection], StubSession]:
        registry.settings.append(settings)

        def factory(connection: BlipConnection) -> StubSession:
            session = StubSession(connection, allow_push=not settings.read_only)
            registry.sessions.append(session)
            return session

        return factory

    monkeypatch.setattr(listener_module, "_make_session_factory", make_factory)
    return registry
