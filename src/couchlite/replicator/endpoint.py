"""Where and as whom a replicator connects: :class:`UrlEndpoint` and the authenticators.

Small immutable values (api.md "Replicator"): each checks its arguments when it is built and
refuses unknown attributes (:mod:`couchlite._strict`), so a misspelt option fails at once.
"""

from __future__ import annotations

import base64
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from couchlite._strict import StrictAttributes
from couchlite.errors import ConfigurationError, InvalidArgumentError
from couchlite.tls.certificates import key_usages_of
from couchlite.tls.identity import KeyUsage, TLSIdentity


class UrlEndpoint(StrictAttributes):
    """The remote database: ``ws://host[:port]/<db>`` or ``wss://...``.

    The last path segment names the database; the replicator connects to
    ``<path>/_blipsync`` (notes §3.1). Credentials belong in an authenticator, not the URL.
    """

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise ConfigurationError(f"the endpoint URL must be a string, not {type(url).__name__}")
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError for a bad port
        except ValueError as exc:
            raise ConfigurationError(f"invalid endpoint URL {url!r}: {exc}") from exc
        if parts.scheme.lower() not in ("ws", "wss"):
            raise ConfigurationError(
                f"invalid endpoint URL {url!r}: the scheme must be ws:// or wss://"
            )
        if not parts.hostname:
            raise ConfigurationError(f"invalid endpoint URL {url!r}: no host")
        if parts.username is not None or parts.password is not None:
            # Credentials in a URL end up in logs; Couchbase Lite wants an authenticator too.
            raise ConfigurationError(
                "credentials in the endpoint URL are not supported: use BasicAuthenticator"
            )
        if parts.fragment:
            raise ConfigurationError(f"invalid endpoint URL {url!r}: fragments are not allowed")
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ConfigurationError(
                f"invalid endpoint URL {url!r}: the path must name the remote database"
            )
        name = unquote(segments[-1])
        if name.startswith("_"):
            # Listeners route `/[^_][^/]*/_blipsync` (notes §3.1): such a name can never match.
            raise ConfigurationError(
                f"invalid endpoint URL {url!r}: database names cannot start with '_'"
            )
        if port == 0:
            raise ConfigurationError(f"invalid endpoint URL {url!r}: port 0")
        self._url = url
        self._parts = parts

    @property
    def url(self) -> str:
        """The URL as given."""
        return self._url

    @property
    def database_name(self) -> str:
        """The remote database's name: the last segment of the URL's path."""
        return unquote([s for s in self._parts.path.split("/") if s][-1])

    @property
    def is_tls(self) -> bool:
        """Whether the URL is ``wss://``."""
        return self._parts.scheme.lower() == "wss"

    @property
    def host(self) -> str:
        """The host name or address of the URL."""
        host = self._parts.hostname
        assert host is not None  # checked in __init__
        return host

    @property
    def blipsync_url(self) -> str:
        """The URL of the WebSocket upgrade request: the path with ``/_blipsync`` appended."""
        parts: SplitResult = self._parts
        path = parts.path.rstrip("/") + "/_blipsync"
        return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UrlEndpoint):
            return NotImplemented
        return self._url == other._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __repr__(self) -> str:
        return f"UrlEndpoint({self._url!r})"


class BasicAuthenticator(StrictAttributes):
    """HTTP Basic credentials, sent preemptively with the upgrade request (notes §3.2)."""

    __slots__ = ("_password", "_username")

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidArgumentError("username and password must be strings")
        if ":" in username:
            # Basic credentials are "user:password": a colon in the name cannot be encoded.
            raise InvalidArgumentError("a Basic authentication username cannot contain ':'")
        self._username = username
        self._password = password

    @property
    def username(self) -> str:
        """The user name sent."""
        return self._username

    @property
    def password(self) -> str:
        """The password sent."""
        return self._password

    def authorization_header(self) -> str:
        """The ``Authorization`` header value."""
        token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BasicAuthenticator):
            return NotImplemented
        return (self._username, self._password) == (other._username, other._password)

    def __hash__(self) -> int:
        return hash((self._username, self._password))

    def __repr__(self) -> str:
        return f"BasicAuthenticator(username={self._username!r}, password='***')"


class ClientCertificateAuthenticator(StrictAttributes):
    """Presents ``identity`` (certificate chain + key) in the TLS handshake: the listener's
    ``ListenerCertificateAuthenticator`` checks it. Needs a ``wss://`` endpoint.

    If the listener refuses the certificate, the replicator stops with a :class:`TLSError`
    whose code is ``TLS_CERT_REJECTED_BY_PEER`` (10).
    """

    __slots__ = ("_identity",)

    def __init__(self, identity: TLSIdentity) -> None:
        if not isinstance(identity, TLSIdentity):
            raise InvalidArgumentError("ClientCertificateAuthenticator needs a TLSIdentity")
        usages = key_usages_of(identity.certificates[0])
        if usages and KeyUsage.CLIENT_AUTH not in usages:
            # The listener's OpenSSL would refuse it ("unsupported certificate purpose").
            raise InvalidArgumentError("the identity's certificate is not for client auth")
        self._identity = identity

    @property
    def identity(self) -> TLSIdentity:
        """The identity presented in the TLS handshake."""
        return self._identity

    def __repr__(self) -> str:
        return f"ClientCertificateAuthenticator({self._identity!r})"


Authenticator = BasicAuthenticator | ClientCertificateAuthenticator


__all__ = ["Authenticator", "BasicAuthenticator", "ClientCertificateAuthenticator", "UrlEndpoint"]
