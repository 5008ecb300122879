"""Accept any client certificate chain in OpenSSL, so that a Python callback can judge it.

Theory of operation
-------------------
``ListenerCertificateAuthenticator(fn)`` lets the application decide about a client's
certificate chain -- self-signed or issued by anyone -- as Couchbase Lite's certificate callback
does. Python's ``ssl`` cannot express that: a server that asks for client certificates
(``CERT_OPTIONAL``/``CERT_REQUIRED``) has OpenSSL verify them against its trust store, and any
failure aborts the handshake, with no verification callback to override the verdict.

So this module installs one, through ``ctypes``, on the ``SSL_CTX`` behind an
``ssl.SSLContext``: ``SSL_CTX_set_verify(ctx, mode, cb)`` with a callback that records the chain
the client sent (``X509_STORE_CTX_get0_untrusted``, DER-encoded) and returns 1, "accept". The
client still has to prove it holds the leaf's private key (TLS ``CertificateVerify`` does not
depend on chain verification), and the listener then verifies the recorded chain itself
(:mod:`couchlite.tls.chains`) and only then hands it to ``fn``, before the WebSocket upgrade is
accepted (``couchlite.listener.certauth``): a refused client never gets to replicate.

The ``SSL_CTX *`` is the first field after the object header of CPython's ``PySSLContext``
(unchanged from 3.7 to 3.13). Before trusting it, :func:`install_permissive_verify` checks that
``SSL_CTX_get_verify_mode`` on it reads back the two modes Python just set; OpenSSL's functions
are found through the ``_ssl`` extension (Linux, macOS) or OpenSSL's DLLs (Windows). Where any
of this is unavailable, :func:`permissive_verify_supported` says so and the listener refuses the
callback authenticator at construction (:class:`ConfigurationError`), pointing to
``ListenerCertificateAuthenticator.from_roots``, which needs nothing of this.

Python 3.13+ has ``SSLObject.get_unverified_chain()``; recording the chain here is for 3.11-3.12.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import ssl
import sys
import threading
from collections import OrderedDict
from typing import Any

from couchlite._tuning import MAX_CLIENT_CHAIN_LENGTH, TLS_MAX_RECORDED_CHAINS

logger = logging.getLogger(__name__)

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_SSL_VERIFY_PEER = 0x01
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02


class _OpenSSL:
    """The few OpenSSL functions we call, with their C signatures."""

    def __init__(self, lib: ctypes.CDLL, crypto: ctypes.CDLL) -> None:
        self.set_verify = lib.SSL_CTX_set_verify
        self.set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
        self.set_verify.restype = None
        self.get_verify_mode = lib.SSL_CTX_get_verify_mode
        self.get_verify_mode.argtypes = [ctypes.c_void_p]
        self.get_verify_mode.restype = ctypes.c_int
        self.get0_untrusted = crypto.X509_STORE_CTX_get0_untrusted
        self.get0_untrusted.argtypes = [ctypes.c_void_p]
        self.get0_untrusted.restype = ctypes.c_void_p
        self.sk_num = crypto.OPENSSL_sk_num
        self.sk_num.argtypes = [ctypes.c_void_p]
        self.sk_num.restype = ctypes.c_int
        self.sk_value = crypto.OPENSSL_sk_value
        self.sk_value.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.sk_value.restype = ctypes.c_void_p
        self.i2d_x509 = crypto.i2d_X509
        self.i2d_x509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        self.i2d_x509.restype = ctypes.c_int
        self.clear_errors = crypto.ERR_clear_error
        self.clear_errors.argtypes = []
        self.clear_errors.restype = None

    def chain_der(self, store_ctx: int) -> tuple[bytes, ...]:
        stack = self.get0_untrusted(store_ctx)
        if not stack:
            return ()
        result = []
        # One more than the chain verifier accepts: enough for it to see the chain is too long.
        for index in range(min(self.sk_num(stack), MAX_CLIENT_CHAIN_LENGTH + 1)):
            cert = self.sk_value(stack, index)
            size = self.i2d_x509(cert, None)
            if size <= 0:
                break
            buffer = ctypes.create_string_buffer(size)
            cursor = ctypes.c_void_p(ctypes.addressof(buffer))
            # i2d_X509 writes at *cursor and advances it; cursor is ours, the buffer stays put.
            if self.i2d_x509(cert, ctypes.byref(cursor)) != size:
                break
            result.append(buffer.raw)
        return tuple(result)


def _libraries() -> list[tuple[ctypes.CDLL, ctypes.CDLL]]:
    import _ssl

    candidates: list[tuple[ctypes.CDLL, ctypes.CDLL]] = []
    with contextlib.suppress(OSError):
        # Linux, macOS: dlsym on the extension also searches the libraries it links to.
        module = ctypes.CDLL(_ssl.__file__)
        candidates.append((module, module))
    if sys.platform == "win32":
        # python.org builds ship OpenSSL as DLLs next to _ssl.pyd, already loaded.
        for ssl_name, crypto_name in (
            ("libssl-3-x64", "libcrypto-3-x64"),
            ("libssl-3", "libcrypto-3"),
            ("libssl-1_1-x64", "libcrypto-1_1-x64"),
            ("libssl-1_1", "libcrypto-1_1"),
        ):
            with contextlib.suppress(OSError):
                candidates.append((ctypes.CDLL(ssl_name), ctypes.CDLL(crypto_name)))
    return candidates


@functools.cache
def _openssl() -> _OpenSSL | None:
    for lib, crypto in _libraries():
        try:
            return _OpenSSL(lib, crypto)
        except AttributeError:
            continue
    return None


def _ssl_ctx_pointer(context: ssl.SSLContext) -> int | None:
    address = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return int(address) if address else None


def _pointer_checked(openssl: _OpenSSL, context: ssl.SSLContext) -> int | None:
    """The context's ``SSL_CTX *``, once OpenSSL confirms it reads what Python wrote."""
    pointer = _ssl_ctx_pointer(context)
    if pointer is None:
        return None
    saved = context.verify_mode
    try:
        for mode, expected in (
            (ssl.CERT_REQUIRED, _SSL_VERIFY_PEER | _SSL_VERIFY_FAIL_IF_NO_PEER_CERT),
            (ssl.CERT_OPTIONAL, _SSL_VERIFY_PEER),
        ):
            context.verify_mode = mode
            if openssl.get_verify_mode(pointer) & 0x03 != expected:
                return None
    finally:
        context.verify_mode = saved
    return pointer


class ChainRecorder:
    """The chains clients sent, by leaf DER (filled by the verification callback)."""

    def __init__(self) -> None:
        self._chains: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        # The callback runs wherever OpenSSL verifies: normally the event loop's thread.
        self._lock = threading.Lock()

    def add(self, chain: tuple[bytes, ...]) -> None:
        if not chain:
            return
        with self._lock:
            self._chains[chain[0]] = chain
            self._chains.move_to_end(chain[0])
            while len(self._chains) > TLS_MAX_RECORDED_CHAINS:
                self._chains.popitem(last=False)

    def chain(self, leaf: bytes) -> tuple[bytes, ...]:
        with self._lock:
            return self._chains.get(leaf, (leaf,))


@functools.cache
def permissive_verify_supported() -> bool:
    """Whether :func:`install_permissive_verify` can work in this interpreter."""
    openssl = _openssl()
    if openssl is None:
        return False
    try:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        return _pointer_checked(openssl, probe) is not None
    except Exception as exc:
        logger.debug("OpenSSL verification callback unavailable: %s", exc)
        return False


def install_permissive_verify(context: ssl.SSLContext) -> ChainRecorder:
    """Require a client certificate on ``context`` and accept any chain (see the docstring).

    Returns where the chains are recorded. Raises ``RuntimeError`` when unsupported (callers
    check :func:`permissive_verify_supported` first).
    """
    openssl = _openssl()
    pointer = _pointer_checked(openssl, context) if openssl is not None else None
    if openssl is None or pointer is None:
        raise RuntimeError("this Python's ssl module cannot take a verification callback")
    recorder = ChainRecorder()
    chain_der = openssl.chain_der

    clear_errors = openssl.clear_errors

    def verify(preverify_ok: int, store_ctx: int) -> int:
        # Called by OpenSSL for each certificate of the chain; must never raise.
        try:
            recorder.add(chain_der(store_ctx))
        except Exception:
            logger.debug("could not record a client certificate chain", exc_info=True)
        if not preverify_ok:
            # The verdict is overridden, so is its trace: a failed signature check leaves an
            # error queued ("ASN1 EVP lib") that would otherwise fail the handshake later, and
            # the client would see a dropped connection instead of the listener's 401.
            clear_errors()
        return 1

    callback = _VERIFY_CALLBACK(verify)
    context.verify_mode = ssl.CERT_REQUIRED
    openssl.set_verify(pointer, _SSL_VERIFY_PEER | _SSL_VERIFY_FAIL_IF_NO_PEER_CERT, callback)
    # OpenSSL keeps a bare pointer to the callback: it must live as long as the context.
    keep: Any = context
    keep._couchlite_verify_callback = callback
    return recorder


__all__ = [
    "ChainRecorder",
    "install_permissive_verify",
    "permissive_verify_supported",
]
