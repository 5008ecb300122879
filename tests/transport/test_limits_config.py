"""The BLIP limits in the listener's and the replicator's configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchlite import (
    ConfigurationError,
    Database,
    DatabaseConfiguration,
    ReplicatorConfiguration,
    UrlEndpointListenerConfiguration,
)
from couchlite.listener.config import validate


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database("limits", DatabaseConfiguration(directory=str(tmp_path)))
    yield database  # type: ignore[misc]
    database.close()


def test_listener_configuration_limits_default_validate_and_copy(db: Database) -> None:
    config = UrlEndpointListenerConfiguration([db.default_collection()])
    settings = validate(config)
    assert settings.max_message_size == 21 * 1024 * 1024
    assert settings.max_attachment_size == 256 * 1024 * 1024
    config.max_message_size = 5_000_000
    config.max_attachment_size = 1 << 30
    settings = validate(config)
    assert (settings.max_message_size, settings.max_attachment_size) == (5_000_000, 1 << 30)
    for name in ("max_message_size", "max_attachment_size"):
        for bad in (0, -5, 1.5, True, "10"):
            broken = UrlEndpointListenerConfiguration([db.default_collection()])
            setattr(broken, name, bad)
            with pytest.raises(ConfigurationError, match=name):
                validate(broken)


def test_replicator_configuration_limits_default_validate_and_copy(db: Database) -> None:
    config = ReplicatorConfiguration("ws://127.0.0.1:4984/db")
    config.add_collection(db.default_collection())
    validated = config._validated()
    assert validated.max_message_size == 21 * 1024 * 1024
    assert validated.max_attachment_size == 256 * 1024 * 1024
    config = ReplicatorConfiguration(
        "ws://127.0.0.1:4984/db", max_message_size=1_000_000, max_attachment_size=2_000_000
    )
    config.add_collection(db.default_collection())
    validated = config._validated()
    assert (validated.max_message_size, validated.max_attachment_size) == (1_000_000, 2_000_000)
    for name in ("max_message_size", "max_attachment_size"):
        for bad in (0, -1, 2.5, False, None):
            setattr(config, name, bad)
            with pytest.raises(ConfigurationError, match=name):
                config._validated()
            setattr(config, name, 1000)
