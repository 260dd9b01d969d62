"""TLS for kaito's servers: a throwaway certificate authority and serving certificates (the
in-process cluster's HTTPS mode, the admission webhook)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ("CertificateAuthority", "ServingCertificate", "generate_serving_certificate")


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
        with tempfile.TemporaryDirectory() as directory:
            cert = Path(directory, "tls.crt")
            key = Path(directory, "tls.key")
            cert.write_bytes(self.cert_pem + self.ca.cert_pem)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(cert, key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts :attr:`ca`."""
        return ssl.create_default_context(cadata=self.ca.cert_pem.decode())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_serving_certificate(
    hosts: list[str], *, ca: CertificateAuthority | None = None, days: int = 365
) -> ServingCertificate:
    """Create (or reuse) a CA and sign a serving certificate for ``hosts`` (names or IPs)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kaito-testing-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days))
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
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca = CertificateAuthority(
            ca_cert.public_bytes(serialization.Encoding.PEM), _key_pem(ca_key)
        )
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key_loaded = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey)
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
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key_loaded.public_key()),
            critical=False,
        )
        .sign(ca_key_loaded, hashes.SHA256())
    )
    return ServingCertificate(ca, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))
