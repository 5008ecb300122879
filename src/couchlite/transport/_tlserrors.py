"""Which TLS rule a failed handshake broke, as couchlite's Network-domain codes (notes §11.2).

Pure tables over ``ssl`` exceptions, used where connections are opened
(:mod:`couchlite.transport.websocket`).
"""

from __future__ import annotations

import ssl as ssl_module

from couchlite.errors import NetworkCode

#: OpenSSL's X509_V_ERR_* codes (``SSLCertVerificationError.verify_code``) -> Network codes.
VERIFY_CODES = {
    2: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # unable to get issuer certificate
    9: NetworkCode.TLS_CERT_EXPIRED,  # certificate is not yet valid
    10: NetworkCode.TLS_CERT_EXPIRED,  # certificate has expired
    18: NetworkCode.TLS_CERT_UNTRUSTED,  # self-signed certificate (not pinned)
    19: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # self-signed certificate in chain
    20: NetworkCode.TLS_CERT_UNKNOWN_ROOT,  # unable to get local issuer certificate
    62: NetworkCode.TLS_CERT_NAME_MISMATCH,  # host name mismatch
    64: NetworkCode.TLS_CERT_NAME_MISMATCH,  # IP address mismatch
}
#: Alerts the server sends about *our* certificate (``SSLError.reason``, OpenSSL's names).
CERT_REQUIRED_ALERTS = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})
CERT_REJECTED_ALERTS = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
#: OpenSSL's reasons when what came back is not TLS at all: typically a plain HTTP answer (a
#: ``ws://`` server replying ``400`` to our ClientHello). LiteCore reports every such failure of
#: its TLS layer as Network/TLSHandshakeFailed; so do we, saying what it most likely means.
NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
    }
)
TLS_FAILURE_TEXT = {
    NetworkCode.TLS_CERT_EXPIRED: "the server certificate has expired or is not yet valid",
    NetworkCode.TLS_CERT_UNTRUSTED: "the server certificate is not trusted",
    NetworkCode.TLS_CERT_UNKNOWN_ROOT: "the server certificate chains to an unknown root",
    NetworkCode.TLS_CERT_NAME_MISMATCH: "the server certificate does not match the host name",
    NetworkCode.TLS_CERT_REQUIRED_BY_PEER: "the server requires a client certificate",
    NetworkCode.TLS_CERT_REJECTED_BY_PEER: "the server rejected the client certificate",
    NetworkCode.TLS_HANDSHAKE_FAILED: "TLS handshake failed",
}


def tls_error_code(exc: ssl_module.SSLError) -> int:
    """The Network-domain code (notes §11.2) saying which TLS rule ``exc`` broke."""
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        # Our own refusals (pinned, self-signed-only) may lack verify_code on some Pythons.
        verify_code = getattr(exc, "verify_code", None)
        return VERIFY_CODES.get(verify_code or 0, NetworkCode.TLS_CERT_UNTRUSTED)
    reason = str(getattr(exc, "reason", None) or "").upper()
    text = str(exc).lower()
    if reason in CERT_REQUIRED_ALERTS or "alert certificate required" in text:
        return NetworkCode.TLS_CERT_REQUIRED_BY_PEER
    if reason in CERT_REJECTED_ALERTS or any(
        f"alert {name}" in text
        for name in ("bad certificate", "unknown ca", "certificate unknown", "access denied")
    ):
        return NetworkCode.TLS_CERT_REJECTED_BY_PEER
    return NetworkCode.TLS_HANDSHAKE_FAILED


def peer_is_not_tls(exc: ssl_module.SSLError) -> bool:
    """Whether ``exc`` says that the peer's bytes were not TLS records (see NOT_TLS_REASONS)."""
    reason = str(getattr(exc, "reason", None) or "").upper()
    return reason in NOT_TLS_REASONS or "wrong version number" in str(exc).lower()


def ssl_error_in(exc: BaseException) -> ssl_module.SSLError | None:
    """``exc`` itself or the first ``ssl.SSLError`` it was raised from (bounded walk)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ssl_module.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


__all__ = [
    "NOT_TLS_REASONS",
    "TLS_FAILURE_TEXT",
    "peer_is_not_tls",
    "ssl_error_in",
    "tls_error_code",
]
