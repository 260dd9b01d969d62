"""X.509 client certificates, as kube-apiserver reads them: the common name is the user, each
organization a group (``O=system:masters`` makes an administrator, as kind's and k3s' admin
kubeconfigs do)."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kaito.cluster._auth._user import ALL_AUTHENTICATED, UserInfo
from kaito.tls import CertificateAuthority, ServingCertificate

__all__ = ("ClientCertificate", "issue_client_certificate", "server_context", "user_from_peercert")


@attrs.frozen
class ClientCertificate:
    """A client certificate and its key (PEM), signed by the cluster's CA."""

    cert_pem: bytes
    key_pem: bytes = attrs.field(repr=False)


def issue_client_certificate(
    ca: CertificateAuthority, user: str, groups: Sequence[str] = (), *, days: int = 365
) -> ClientCertificate:
    """Sign a client certificate for ``user`` (CN) in ``groups`` (one O each)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the cluster CA key must be an elliptic-curve key")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ClientCertificate(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def server_context(serving: ServingCertificate) -> ssl.SSLContext:
    """The HTTPS context: ``serving``'s certificate, and client certificates verified against
    the same CA when a client offers one (``VerifyClientCertIfGiven``)."""
    context = serving.server_context()
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=serving.ca.cert_pem.decode())
    return context


def user_from_peercert(peercert: Mapping[str, Any] | None) -> UserInfo | None:
    """The user of a verified client certificate (``ssl.SSLSocket.getpeercert()``), if any."""
    if not peercert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    if ALL_AUTHENTICATED not in groups:
        groups.append(ALL_AUTHENTICATED)
    return UserInfo(name, groups=tuple(groups))
