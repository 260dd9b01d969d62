"""TLS for kaito's servers: certificate authorities and serving certificates (the in-process
cluster's HTTPS mode, the admission webhook and its rotation), and what a PEM says about itself.

Every generator takes the time it runs at (``now``), so a rotation can be tested on a fake clock;
certificates start 5 minutes before ``now`` to tolerate clock skew between machines. Importing
this module is cheap: ``cryptography`` loads only when a certificate is made or parsed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = (
    "CertificateAuthority",
    "CertificateInfo",
    "ServingCertificate",
    "certificate_info",
    "generate_certificate_authority",
    "generate_serving_certificate",
    "issued_by",
    "load_server_certificate",
    "split_pem_bundle",
)

#: How far back a new certificate's validity starts (clock skew between replicas and servers).
BACKDATE: Final = dt.timedelta(minutes=5)
_PEM_END: Final = b"-----END CERTIFICATE-----"


@attrs.frozen
class CertificateAuthority:
    """A CA certificate and key (PEM)."""

    cert_pem: bytes
    key_pem: bytes


@attrs.frozen
class ServingCertificate:
    """A server certificate signed by :attr:`ca` for the given hosts."""

    ca: CertificateAuthority
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        load_server_certificate(context, self)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts :attr:`ca`."""
        return ssl.create_default_context(cadata=self.ca.cert_pem.decode())


@attrs.frozen
class CertificateInfo:
    """What a certificate says about itself."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    hosts: tuple[str, ...]
    is_ca: bool
    serial: int

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        """How long it is still valid at ``now`` (negative once expired)."""
        return self.not_after - now

    @property
    def lifetime(self) -> dt.timedelta:
        """Its whole validity."""
        return self.not_after - self.not_before


def load_server_certificate(context: ssl.SSLContext, certificate: ServingCertificate) -> None:
    """Make ``context`` serve ``certificate`` (with its CA in the chain).

    Calling it again on a context that already serves switches the certificate for every new
    handshake: that is how a running server rotates without restarting.
    """
    with tempfile.TemporaryDirectory() as directory:
        cert = Path(directory, "tls.crt")
        key = Path(directory, "tls.key")
        cert.write_bytes(
            certificate.cert_pem + b"".join(split_pem_bundle(certificate.ca.cert_pem)[:1])
        )
        key.touch(mode=0o600)
        key.write_bytes(certificate.key_pem)
        context.load_cert_chain(cert, key)


def split_pem_bundle(pem: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each with its trailing newline."""
    parts = []
    for chunk in pem.split(_PEM_END)[:-1]:
        start = chunk.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            parts.append(chunk[start:] + _PEM_END + b"\n")
    return parts


def certificate_info(pem: bytes) -> CertificateInfo:
    """Parse the first certificate of ``pem``.

    Raises:
        ValueError: ``pem`` holds no certificate.
    """
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = tuple(
            [str(n) for n in names.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        hosts = ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        hosts=hosts,
        is_ca=is_ca,
        serial=cert.serial_number,
    )


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether the first certificate of ``cert_pem`` is signed by that of ``ca_pem``."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - BACKDATE


def generate_certificate_authority(
    *,
    common_name: str = "kaito-testing-ca",
    validity: dt.timedelta = dt.timedelta(days=365),
    now: dt.datetime | None = None,
) -> CertificateAuthority:
    """A new self-signed CA (P-256), valid for ``validity`` from ``now``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def generate_serving_certificate(
    hosts: Sequence[str],
    *,
    ca: CertificateAuthority | None = None,
    days: int = 365,
    validity: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> ServingCertificate:
    """Sign a serving certificate for ``hosts`` (names or IPs) with ``ca`` (a new one if None).

    It is valid for ``validity`` (default ``days``) from ``now``, never past its CA's end.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    lifetime = validity if validity is not None else dt.timedelta(days=days)
    if ca is None:
        ca = generate_certificate_authority(validity=lifetime, now=now)
    ca_cert = x509.load_pem_x509_certificate(split_pem_bundle(ca.cert_pem)[0])
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key; kaito signs with P-256 CAs only")
    start = _now(now)
    end = min(start + BACKDATE + lifetime, ca_cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ServingCertificate(ca, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
