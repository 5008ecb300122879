"""The listener's TLS server contexts: the identity it presents, and client certificates.

Theory of operation
-------------------
:func:`server_context` makes a server context (TLS 1.2 minimum) presenting an identity.
:func:`require_client_certificates` makes it ask every client for a certificate
(``CERT_REQUIRED``), in one of two ways:

* with trusted roots, OpenSSL verifies the chain during the handshake (the roots are the only
  trust anchors, with the same chain rules as the client side: ``apply_chain_rules``);
* without, OpenSSL accepts any chain (:mod:`couchlite.transport.openssl_verify`) and the
  ``SSLObject`` hands the chain the client sent to the listener, which judges it after the
  handshake and before the WebSocket upgrade (``couchlite.listener.certauth``).

Either way :class:`AlertingSSLObject` makes sure a client refused in the handshake hears why.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from couchlite.transport.openssl_verify import install_permissive_verify
from couchlite.transport.tls_context import apply_chain_rules, load_identity

if TYPE_CHECKING:
    from couchlite.tls.identity import TLSIdentity


def server_context(identity: TLSIdentity) -> ssl.SSLContext:
    """A server-side ``ssl.SSLContext`` presenting ``identity`` (TLS 1.2 minimum)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_identity(context, identity)
    return context


class AlertingSSLObject(ssl.SSLObject):
    """Makes sure a client refused during the handshake hears why.

    When OpenSSL fails a server handshake (no client certificate, an untrusted one) it queues
    the TLS alert that says so; asyncio then aborts the transport at once, and the alert is
    never sent: the client sees the connection drop, which looks like a network failure worth
    retrying. So the failure is held back once, as "want read": asyncio flushes what OpenSSL
    queued (the alert), and the held error ends the handshake on the next call, when the client
    sends anything or hangs up (asyncio's handshake timeout bounds the wait).
    """

    _couchlite_failure: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        failure = self._couchlite_failure
        if failure is not None:
            raise failure
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            self._couchlite_failure = exc
            raise ssl.SSLWantReadError("flushing the alert first") from exc


def require_client_certificates(
    context: ssl.SSLContext, roots: Sequence[x509.Certificate] | None
) -> None:
    """Make the server ``context`` require a client certificate: one issued under ``roots``
    (checked by OpenSSL), or with ``None`` any chain, recorded for the listener to judge after
    the handshake (``SSLObject.peer_certificate_chain()``)."""
    context.sslobject_class = AlertingSSLObject
    if roots is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        apply_chain_rules(context)
        pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in roots)
        context.load_verify_locations(cadata=pem)
        return
    recorder = install_permissive_verify(context)

    class RecordingSSLObject(AlertingSSLObject):
        def peer_certificate_chain(self) -> tuple[bytes, ...]:
            """The chain the client sent (DER), led by the certificate the handshake proved.

            ``getpeercert`` is the certificate whose key signed the handshake; the recorded
            chain is only believed behind it, so ``chain[0]`` is always that certificate.
            """
            leaf = self.getpeercert(binary_form=True)
            if leaf is None:
                return ()
            chain: tuple[bytes, ...] = ()
            getter = getattr(self, "get_unverified_chain", None)  # Python 3.13+
            if callable(getter):
                chain = tuple(c for c in (getter() or ()) if isinstance(c, bytes))
            if not chain:
                chain = recorder.chain(leaf)
            if chain[:1] != (leaf,):
                chain = (leaf, *(c for c in chain if c != leaf))
            return chain

    context.sslobject_class = RecordingSSLObject


__all__ = ["AlertingSSLObject", "require_client_certificates", "server_context"]
