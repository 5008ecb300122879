"""Client-certificate authentication of the listener (``ListenerCertificateAuthenticator``).

Theory of operation
-------------------
Both forms make the listener's TLS context ask every client for a certificate
(``CERT_REQUIRED``; TLS 1.2 minimum as always; the context is built by
:func:`couchlite.transport.tls_server.require_client_certificates`), so a client without one
fails the TLS handshake itself ("certificate required" -- the client reports
``TLS_CERT_REQUIRED_BY_PEER``, 9):

* ``from_roots(certs)``: the roots become the context's only trust anchors for client
  certificates and OpenSSL verifies the chain, its validity dates and its signatures during the
  handshake; an untrusted or expired client certificate fails the handshake ("unknown ca", "bad
  certificate" -- the client reports ``TLS_CERT_REJECTED_BY_PEER``, 10). Nothing else to do.
* ``ListenerCertificateAuthenticator(fn)``: OpenSSL is told to accept any chain
  (:mod:`couchlite.transport.openssl_verify`); the TLS handshake still proves that the client
  holds the private key of the first certificate it sent (``CertificateVerify``), and a client
  that does not fails the handshake. The chain is then judged *after* the TLS handshake and
  *before* the WebSocket upgrade, in the listener's request hook (:func:`check_client`), in two
  steps:

  1. **Is the chain internally valid?** (:func:`couchlite.tls.chains.verify_client_chain`):
     ``chain[0]`` is the very certificate the handshake proved (compared byte for byte with
     the one the TLS layer verified); every certificate is issued and signed by the next one,
     every issuer is a CA allowed to sign certificates, no certificate is expired or not yet
     valid, the leaf allows ``clientAuth``, at most ``MAX_CLIENT_CHAIN_LENGTH`` certificates.
     A chain that fails is refused without calling ``fn``, and the reason is logged.
  2. **Is it trusted?** ``fn(chain)`` decides -- a plain function runs in a worker thread, a
     coroutine function on the loop, bounded by :data:`AUTH_TIMEOUT_S` -- and must return
     ``True``.

  Anything else, an exception included, refuses the upgrade with HTTP 401: the connection never
  reaches a replication session. A couchlite replicator that presented a client certificate
  reports that 401 as ``TLSError`` ``TLS_CERT_REJECTED_BY_PEER`` (10). (Why not refuse inside
  the handshake? ``fn`` may be a coroutine, and the handshake runs synchronously inside OpenSSL.)

What ``fn`` receives, and must check
------------------------------------
``fn`` gets a list of ``cryptography.x509.Certificate``, leaf first, exactly as the client sent
it, and only once step 1 passed: the client holds ``chain[0]``'s key, and each ``chain[i]`` was
signed by ``chain[i + 1]``. Nothing in it is *trusted* yet: anyone can make a self-signed
certificate, or a CA of their own. So ``fn`` decides trust by comparing *certificates* (or keys),
never names alone:

* a known device: ``chain[0] == known_device_certificate``;
* issued by your CA: ``chain[-1] == ca`` (the client sent the CA certificate) or
  ``chain[-1].verify_directly_issued_by(ca)`` (it did not); ``ca in chain`` is also sound.

Comparing ``chain[0].issuer`` or ``chain[-1].subject`` with the CA's name is *not* a check: a
forger chooses names freely. When the top certificate names an issuer that was not sent, that
issuer's signature has not been checked by anyone but ``fn``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

from cryptography import x509

from couchlite._tuning import AUTH_TIMEOUT_S
from couchlite.listener.config import ListenerCertificateAuthenticator
from couchlite.tls.chains import ChainError, verify_client_chain
from couchlite.transport.websocket import HandshakeRejection, HandshakeRequest

logger = logging.getLogger(__name__)


CERTIFICATE_REJECTED = HandshakeRejection(401, "Client certificate rejected")
CERTIFICATE_MISSING = HandshakeRejection(401, "Client certificate required")
AUTH_TIMED_OUT = HandshakeRejection(503, "Authentication timed out")


async def check_client(
    authenticator: ListenerCertificateAuthenticator,
    request: HandshakeRequest,
    log_name: str,
) -> HandshakeRejection | None:
    """``None`` if the client's certificate chain is accepted (see the module docstring)."""
    fn = authenticator.fn
    if fn is None:
        return None  # from_roots: OpenSSL verified the chain during the handshake
    if not request.peer_certificates:
        logger.info("%s: no client certificate from %s", log_name, request.remote_address)
        return CERTIFICATE_MISSING
    try:
        chain = [x509.load_der_x509_certificate(der) for der in request.peer_certificates]
    except ValueError:
        logger.info("%s: unparsable client certificate from %s", log_name, request.remote_address)
        return CERTIFICATE_REJECTED
    try:
        subject = chain[0].subject.rfc4514_string()
    except ValueError:
        subject = "<unreadable subject>"
    try:
        verify_client_chain(chain)
    except ChainError as exc:
        logger.info(
            "%s: client certificate chain of %r from %s refused: %s",
            log_name,
            subject,
            request.remote_address,
            exc,
        )
        return CERTIFICATE_REJECTED
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            if inspect.iscoroutinefunction(fn):
                accepted = await fn(chain)
            else:
                # A plain function may block (a lookup): keep it off the event loop.
                accepted = await asyncio.to_thread(fn, chain)
                if inspect.isawaitable(accepted):
                    accepted = await accepted
    except TimeoutError:
        logger.warning("%s: certificate check for %r timed out", log_name, subject)
        return AUTH_TIMED_OUT
    except Exception:
        # Fail closed: a broken check must not let anyone in.
        logger.exception("%s: certificate check for %r raised", log_name, subject)
        return CERTIFICATE_REJECTED
    if accepted is not True:
        logger.info("%s: client certificate %r refused", log_name, subject)
        return CERTIFICATE_REJECTED
    return None


__all__ = ["AUTH_TIMEOUT_S", "check_client"]
