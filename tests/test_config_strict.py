"""Configuration objects refuse misspelt attributes, naming the closest real one.

Couchbase Lite's configuration classes are typed: ``config.continous = true`` does not compile.
Here the same typo must fail at run time instead of being silently ignored.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from couchlite import (
    BasicAuthenticator,
    ClientCertificateAuthenticator,
    CollectionConfiguration,
    Database,
    DatabaseConfiguration,
    KeyUsage,
    ListenerCertificateAuthenticator,
    ListenerPasswordAuthenticator,
    ReplicatorConfiguration,
    TLSIdentity,
    UrlEndpoint,
    UrlEndpointListenerConfiguration,
)
from couchlite._strict import StrictAttributes, declared_attributes


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database("strict", DatabaseConfiguration(directory=tmp_path))
    try:
        yield database
    finally:
        database.close()


@pytest.fixture(scope="module")
def client_identity() -> TLSIdentity:
    return TLSIdentity.create_identity(KeyUsage.CLIENT_AUTH, {"CN": "device"})


def _objects(db: Database, identity: TLSIdentity) -> dict[str, object]:
    return {
        "ReplicatorConfiguration": ReplicatorConfiguration("ws://127.0.0.1:4984/db"),
        "CollectionConfiguration": CollectionConfiguration(),
        "UrlEndpoint": UrlEndpoint("ws://127.0.0.1:4984/db"),
        "BasicAuthenticator": BasicAuthenticator("user", "secret"),
        "ClientCertificateAuthenticator": ClientCertificateAuthenticator(identity),
        "UrlEndpointListenerConfiguration": UrlEndpointListenerConfiguration(
            collections=[db.default_collection()]
        ),
        "ListenerPasswordAuthenticator": ListenerPasswordAuthenticator(lambda u, p: True),
        "ListenerCertificateAuthenticator": ListenerCertificateAuthenticator(lambda c: True),
    }


#: (class, misspelt attribute, the suggestion expected)
TYPOS = [
    ("ReplicatorConfiguration", "continous", "continuous"),
    ("ReplicatorConfiguration", "hearbeat", "heartbeat"),
    ("ReplicatorConfiguration", "replicatorType", "replicator_type"),
    ("CollectionConfiguration", "push_fliter", "push_filter"),
    ("CollectionConfiguration", "documentIDs", None),
    ("UrlEndpoint", "urls", "url"),
    ("BasicAuthenticator", "pasword", "password"),
    ("ClientCertificateAuthenticator", "identiy", "identity"),
    ("UrlEndpointListenerConfiguration", "read_onyl", "read_only"),
    ("UrlEndpointListenerConfiguration", "disableTLS", None),
    ("ListenerPasswordAuthenticator", "fun", "fn"),
    ("ListenerCertificateAuthenticator", "rootz", "roots"),
]


@pytest.mark.parametrize(("cls", "name", "suggestion"), TYPOS)
def test_a_misspelt_attribute_is_refused_with_the_closest_name(
    db: Database, client_identity: TLSIdentity, cls: str, name: str, suggestion: str | None
) -> None:
    obj = _objects(db, client_identity)[cls]
    with pytest.raises(AttributeError) as info:
        setattr(obj, name, True)
    message = str(info.value)
    assert message.startswith(f"{cls} has no attribute {name!r}")
    if suggestion is not None:
        assert message.endswith(f"; did you mean {suggestion!r}?")
    assert name not in getattr(obj, "__dict__", {})


def test_the_example_of_the_contract(db: Database) -> None:
    config = ReplicatorConfiguration("ws://127.0.0.1:4984/db")
    with pytest.raises(AttributeError) as info:
        config.continous = True  # type: ignore[attr-defined]
    assert str(info.value) == (
        "ReplicatorConfiguration has no attribute 'continous'; did you mean 'continuous'?"
    )
    assert config.continuous is False


def test_valid_attributes_still_set(db: Database) -> None:
    config = ReplicatorConfiguration("ws://127.0.0.1:4984/db")
    config.continuous = True
    config.heartbeat = 30.0
    config.headers = {"X-Test": "1"}
    config.authenticator = BasicAuthenticator("u", "p")
    config.trusted_root_certificates = None
    config.add_collection(db.default_collection())
    assert config.continuous and config.heartbeat == 30.0
    assert config._validated().continuous

    collection_config = CollectionConfiguration()
    collection_config.document_ids = ["a"]
    collection_config.push_filter = lambda doc, flags: True
    assert collection_config.document_ids == ["a"]

    listener_config = UrlEndpointListenerConfiguration(collections=[db.default_collection()])
    listener_config.port = 0
    listener_config.read_only = True
    listener_config.network_interface = "127.0.0.1"
    assert listener_config.read_only


def test_read_only_properties_stay_read_only(db: Database) -> None:
    endpoint = UrlEndpoint("ws://127.0.0.1:4984/db")
    with pytest.raises(AttributeError, match="no setter"):
        endpoint.url = "ws://elsewhere/db"  # type: ignore[misc]
    config = ReplicatorConfiguration("ws://127.0.0.1:4984/db")
    with pytest.raises(AttributeError, match="no setter"):
        config.database = db  # type: ignore[misc]


@pytest.mark.parametrize(
    "make",
    [
        lambda db: ReplicatorConfiguration("ws://127.0.0.1:4984/db", continuous=True),
        lambda db: CollectionConfiguration(document_ids=["a", "b"]),
        lambda db: UrlEndpoint("wss://127.0.0.1:4984/db"),
        lambda db: BasicAuthenticator("user", "secret"),
        lambda db: UrlEndpointListenerConfiguration(
            collections=[db.default_collection()], read_only=True
        ),
    ],
)
def test_copies_are_equal_and_still_strict(
    db: Database, make: Callable[[Database], object]
) -> None:
    original = make(db)
    duplicates = [copy.copy(original)]
    if not isinstance(original, UrlEndpointListenerConfiguration):  # it holds a Database
        duplicates.append(copy.deepcopy(original))
    for duplicate in duplicates:
        assert type(duplicate) is type(original)
        assert repr(duplicate) == repr(original)
        with pytest.raises(AttributeError, match="has no attribute 'typo'"):
            duplicate.typo = 1  # type: ignore[attr-defined]


def test_pickling_works_as_before() -> None:
    for original in (
        UrlEndpoint("ws://127.0.0.1:4984/db"),
        BasicAuthenticator("user", "secret"),
        CollectionConfiguration(document_ids=["a"]),
    ):
        restored = pickle.loads(pickle.dumps(original))
        assert repr(restored) == repr(original)
        assert declared_attributes(type(restored)) == declared_attributes(type(original))


def test_subclasses_declare_their_own_attributes() -> None:
    class Custom(StrictAttributes):
        colour: str
        _secret: int

        def __init__(self) -> None:
            self.colour = "red"
            self._secret = 1

    custom = Custom()
    custom.colour = "blue"
    with pytest.raises(AttributeError, match="did you mean 'colour'"):
        custom.color = "green"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="has no attribute '_other'"):
        custom._other = 2  # type: ignore[attr-defined]
