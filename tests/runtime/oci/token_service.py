"""A registry token service (the Docker token authentication protocol) for tests.

``docker-registry`` configured with ``auth.token`` sends clients to this service's realm; it
checks HTTP Basic credentials and answers a JWT (RS256) granting the requested scope, signed by a
self-signed certificate the registry trusts (``rootcertbundle``). The registry verifies the
tokens itself, so clients go through the same Bearer flow as with ACR or Docker Hub.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "kaito-test-issuer"
SERVICE = "kaito-test-registry"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@attrs.define
class TokenService:
    """A running token service: its realm URL, trusted certificate, and the scopes it granted."""

    realm: str
    cert_path: Path
    granted: list[str] = attrs.field(factory=list)

    def registry_auth_config(self) -> list[str]:
        """The ``auth:`` section for ``docker-registry``'s config."""
        return [
            "auth:",
            "  token:",
            f"    realm: {self.realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {self.cert_path}",
        ]


def _certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kaito-test-token-signer")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@contextmanager
def run_token_service(root: Path, users: dict[str, str]) -> Iterator[TokenService]:
    """Serve tokens for ``users`` (name to password) on a loopback port until exit."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(key)
    root.mkdir(parents=True, exist_ok=True)
    cert_path = root / "token-signer.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    service: TokenService | None = None

    def issue(subject: str, scope: str | None) -> str:
        access = []
        if scope and subject:
            kind, name, actions = scope.split(":", 2)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(dt.datetime.now(dt.UTC).timestamp())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            scope = query.get("scope", [None])[0]
            subject = ""
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if users.get(user) != password:
                    self._answer(401, {"details": "incorrect username or password"})
                    return
                subject = user
            assert service is not None
            if subject and scope:
                service.granted.append(scope)
            token = issue(subject, scope)
            self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service = TokenService(
        realm=f"http://127.0.0.1:{server.server_port}/token", cert_path=cert_path
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
