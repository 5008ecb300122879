"""Client certificate chains an attacker could present, next to an honest one.

Made with ``cryptography`` directly (the public API refuses to make most of them). EC P-256 keys
keep generation fast. Every forgery is presented with the private key of its *first*
certificate, as a TLS client must (the handshake proves that key); what is forged is the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from couchlite import TLSIdentity

Key = ec.EllipticCurvePrivateKey

CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER = ExtendedKeyUsageOID.SERVER_AUTH


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    subject: str,
    key: Key,
    *,
    issuer: tuple[x509.Certificate, Key] | None = None,
    issuer_name: x509.Name | None = None,
    ca: bool = False,
    path_length: int | None = None,
    key_cert_sign: bool | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    extra: list[tuple[x509.ExtensionType, bool]] | None = None,
    algorithm: Any = None,
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``issuer`` (self-signed without one)."""
    signer_name = issuer[0].subject if issuer is not None else name(subject)
    signing_key = issuer[1] if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name or signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or _now() - dt.timedelta(minutes=5))
        .not_valid_after(not_after or _now() + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if key_cert_sign is not None or ca:
        signs = ca if key_cert_sign is None else key_cert_sign
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=signs,
                crl_sign=signs,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    for extension, critical in extra or ():
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, algorithm or hashes.SHA256())


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Pki:
    """A root CA, an intermediate CA under it, and a device issued by the intermediate."""

    root: x509.Certificate
    root_key: Key
    intermediate: x509.Certificate
    intermediate_key: Key
    device: TLSIdentity  # [device, intermediate, root]

    @classmethod
    def create(cls, root_name: str = "Devices Root") -> Pki:
        root_key = new_key()
        root = certificate(root_name, root_key, ca=True)
        intermediate_key = new_key()
        intermediate = certificate(
            "Devices Intermediate", intermediate_key, issuer=(root, root_key), ca=True
        )
        device_key = new_key()
        device = certificate(
            "device-1", device_key, issuer=(intermediate, intermediate_key), eku=[CLIENT]
        )
        return cls(
            root,
            root_key,
            intermediate,
            intermediate_key,
            TLSIdentity([device, intermediate, root], device_key),
        )

    def honest(self, cn: str = "device-2") -> TLSIdentity:
        """Another honest device: [leaf, intermediate, root]."""
        key = new_key()
        leaf = certificate(cn, key, issuer=(self.intermediate, self.intermediate_key), eku=[CLIENT])
        return TLSIdentity([leaf, self.intermediate, self.root], key)


def forgeries(pki: Pki) -> dict[str, TLSIdentity]:
    """Chains that a check like ``chain[-1] == pki.root`` or ``pki.root in chain`` would let in
    if nobody verified them first; each is presented with its leaf's real key."""
    result: dict[str, TLSIdentity] = {}

    key = new_key()
    self_signed = certificate("device-1", key, eku=[CLIENT])
    result["self-signed leaf + real CA appended"] = TLSIdentity([self_signed, pki.root], key)

    impostor_key = new_key()
    impostor = certificate(pki.root.subject.rfc4514_string()[3:], impostor_key, ca=True)
    assert impostor.subject == pki.root.subject
    key = new_key()
    leaf = certificate("device-1", key, issuer=(impostor, impostor_key), eku=[CLIENT])
    result["leaf signed by another key under the CA's name"] = TLSIdentity([leaf, pki.root], key)

    key = new_key()
    leaf = certificate("device-1", key, issuer_name=pki.intermediate.subject, eku=[CLIENT])
    result["self-signed leaf claiming the intermediate"] = TLSIdentity(
        [leaf, pki.intermediate, pki.root], key
    )

    expired_key = new_key()
    expired_intermediate = certificate(
        "Devices Intermediate",
        expired_key,
        issuer=(pki.root, pki.root_key),
        ca=True,
        not_before=_now() - dt.timedelta(days=60),
        not_after=_now() - dt.timedelta(days=1),
    )
    key = new_key()
    leaf = certificate("device-1", key, issuer=(expired_intermediate, expired_key), eku=[CLIENT])
    result["expired intermediate"] = TLSIdentity([leaf, expired_intermediate, pki.root], key)

    key = new_key()
    leaf = certificate(
        "device-1", key, issuer=(pki.intermediate, pki.intermediate_key), eku=[SERVER]
    )
    result["leaf without clientAuth"] = TLSIdentity([leaf, pki.intermediate, pki.root], key)

    # The holder of an honest device certificate (not a CA) issues itself another identity.
    device_cert = pki.device.certificates[0]
    device_key: Any = pki.device.private_key
    key = new_key()
    leaf = certificate("admin", key, issuer=(device_cert, device_key), eku=[CLIENT])
    result["a non-CA signs the leaf"] = TLSIdentity(
        [leaf, device_cert, pki.intermediate, pki.root], key
    )

    # A CA whose key usage forbids signing certificates.
    limited_key = new_key()
    limited = certificate(
        "Limited CA", limited_key, issuer=(pki.root, pki.root_key), ca=True, key_cert_sign=False
    )
    key = new_key()
    leaf = certificate("device-1", key, issuer=(limited, limited_key), eku=[CLIENT])
    result["issuer without keyCertSign"] = TLSIdentity([leaf, limited, pki.root], key)

    # An intermediate that may not have CAs under it, with one under it.
    end_key = new_key()
    end_ca = certificate("End CA", end_key, issuer=(pki.root, pki.root_key), ca=True, path_length=0)
    sub_key = new_key()
    sub_ca = certificate("Sub CA", sub_key, issuer=(end_ca, end_key), ca=True)
    key = new_key()
    leaf = certificate("device-1", key, issuer=(sub_ca, sub_key), eku=[CLIENT])
    result["path length exceeded"] = TLSIdentity([leaf, sub_ca, end_ca, pki.root], key)

    # Longer than any honest chain: bounded work per handshake.
    chain_certs: list[x509.Certificate] = [pki.root]
    signer: tuple[x509.Certificate, Key] = (pki.root, pki.root_key)
    for index in range(11):
        ca_key = new_key()
        ca_cert = certificate(f"Level {index}", ca_key, issuer=signer, ca=True)
        chain_certs.insert(0, ca_cert)
        signer = (ca_cert, ca_key)
    key = new_key()
    leaf = certificate("device-1", key, issuer=signer, eku=[CLIENT])
    result["too many certificates"] = TLSIdentity([leaf, *chain_certs], key)
    return result


__all__ = ["CLIENT", "SERVER", "Pki", "certificate", "forgeries", "name", "new_key"]
