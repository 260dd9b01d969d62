"""A small client of the OCI distribution API (manifests and blobs) over httpx.

It answers registry auth challenges itself: HTTP Basic (htpasswd registries) and the Bearer token
flow (ACR, GHCR, Docker Hub), using credentials from a docker config. Every blob and manifest it
reads is hashed and checked against the digest that names it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import structlog

from kaito_runtime.oci._credentials import Credentials
from kaito_runtime.oci._errors import (
    AuthenticationError,
    DigestMismatchError,
    ImageNotFoundError,
    RegistryError,
)
from kaito_runtime.oci._reference import ImageReference

__all__ = ("Manifest", "RegistryClient", "is_loopback_host", "sha256_digest")

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 4 << 20
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def sha256_digest(data: bytes) -> str:
    """Return the ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_loopback_host(registry: str) -> bool:
    """Return whether ``registry`` (``host[:port]``) is this machine, where plain HTTP is usual."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Manifest:
    """A fetched manifest: its raw bytes, media type, verified digest and parsed JSON."""

    def __init__(self, raw: bytes, media_type: str, digest: str, document: dict[str, Any]) -> None:
        self.raw = raw
        self.media_type = media_type
        self.digest = digest
        self.document = document


def _registry_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return text[:200] or response.reason_phrase
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        parts = []
        for err in errors:
            if isinstance(err, dict):
                code = err.get("code", "")
                message = err.get("message", "")
                parts.append(f"{code}: {message}" if code else str(message))
        return "; ".join(parts)[:300]
    return str(body)[:200]


class RegistryClient:
    """A synchronous distribution-API client for one repository.

    ``actions`` is the token scope asked for (``("pull",)`` or ``("pull", "push")``). Use it as a
    context manager so its connection pool is closed.
    """

    def __init__(
        self,
        ref: ImageReference,
        *,
        credentials: Credentials | None = None,
        actions: tuple[str, ...] = ("pull",),
        plain_http: bool | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.ref = ref
        self._credentials = credentials
        self._scope = f"repository:{ref.repository}:{','.join(actions)}"
        insecure = is_loopback_host(ref.api_host) if plain_http is None else plain_http
        self._base = f"{'http' if insecure else 'https'}://{ref.api_host}"
        self._auth_header: str | None = None
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- auth -------------------------------------------------------------------------------

    def _authorize(self, challenge: str) -> bool:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        creds = self._credentials
        if scheme.lower() == "basic":
            if creds is None:
                return False
            self._auth_header = _basic_header(creds)
            return True
        if scheme.lower() != "bearer" or "realm" not in params:
            return False
        # Our own scope covers every action this client performs; the challenge's scope names
        # only the action of the request that was refused (pull for a HEAD before a push).
        query = {"scope": self._scope}
        if "service" in params:
            query["service"] = params["service"]
        auth = httpx.BasicAuth(creds.username, creds.password) if creds else None
        response = self._http.get(params["realm"], params=query, auth=auth)
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"registry {self.ref.registry} token service refused the credentials "
                f"({response.status_code}: {_registry_message(response)}); check the docker "
                "config secret",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise RegistryError(
                f"registry {self.ref.registry} token service answered {response.status_code}: "
                f"{_registry_message(response)}",
                status=response.status_code,
            )
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"registry {self.ref.registry} token service returned no token")
        self._auth_header = f"Bearer {token}"
        return True

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        if self._auth_header:
            request.headers["Authorization"] = self._auth_header
        response = self._http.send(request, stream=stream)
        if response.status_code == 401 and request.headers.get("Authorization") is None:
            challenge = response.headers.get("WWW-Authenticate", "")
            response.read()
            response.close()
            if self._authorize(challenge):
                request.headers["Authorization"] = self._auth_header or ""
                response = self._http.send(request, stream=stream)
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        what: str,
        ok: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        url = path if path.startswith("http") else f"{self._base}{path}"
        try:
            request = self._http.build_request(method, url, **kwargs)
            response = self._send(request, stream=stream)
        except httpx.TransportError as err:
            raise RegistryError(
                f"cannot reach registry {self.ref.registry} at {self._base} ({err}); check the "
                "host name and network (use --plain-http for an HTTP-only registry)"
            ) from err
        if response.status_code in ok:
            return response
        if stream:
            response.read()
            response.close()
        message = _registry_message(response)
        status = response.status_code
        if status in (401, 403):
            hint = (
                "pass a docker config with credentials for this registry"
                if self._credentials is None
                else "check the username/password in the docker config secret"
            )
            raise AuthenticationError(
                f"registry {self.ref.registry} refused {what} for {self.ref} "
                f"({status}: {message}); {hint}",
                status=status,
            )
        if status == 404:
            raise ImageNotFoundError(
                f"registry {self.ref.registry} has no {what} for {self.ref} ({status}: {message}); "
                "check the repository and tag",
                status=status,
            )
        raise RegistryError(
            f"registry {self.ref.registry} answered {status} to {what} for {self.ref}: {message}",
            status=status,
        )

    # -- manifests ---------------------------------------------------------------------------

    def get_manifest(self, target: str, accept: tuple[str, ...]) -> Manifest:
        """Fetch the manifest named by ``target`` (tag or digest) and verify its digest."""
        response = self._request(
            "GET",
            f"/v2/{self.ref.repository}/manifests/{target}",
            headers={"Accept": ", ".join(accept)},
            what="the manifest",
        )
        raw = response.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest of {self.ref} is larger than 4 MiB; not an adapter")
        digest = sha256_digest(raw)
        expected = target if target.startswith("sha256:") else None
        expected = expected or response.headers.get("Docker-Content-Digest")
        if expected and expected.startswith("sha256:") and expected != digest:
            raise DigestMismatchError(
                f"manifest of {self.ref} hashes to {digest} but the registry names it {expected}; "
                "the registry or a proxy altered it, pull again or re-push the image"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            document = response.json()
        except ValueError as err:
            raise RegistryError(f"manifest of {self.ref} is not JSON") from err
        if not isinstance(document, dict):
            raise RegistryError(f"manifest of {self.ref} is not a JSON object")
        media_type = str(document.get("mediaType") or media_type)
        return Manifest(raw, media_type, digest, document)

    def put_manifest(self, raw: bytes, media_type: str, target: str) -> str:
        """Upload a manifest under ``target`` (a tag) and return its digest, checked."""
        digest = sha256_digest(raw)
        response = self._request(
            "PUT",
            f"/v2/{self.ref.repository}/manifests/{target}",
            content=raw,
            headers={"Content-Type": media_type},
            what="the manifest upload",
            ok=(200, 201, 202),
        )
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise DigestMismatchError(
                f"registry {self.ref.registry} stored the manifest of {self.ref} as {answered}, "
                f"expected {digest}"
            )
        return digest

    # -- blobs -------------------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        """Return whether the repository already holds the blob ``digest``."""
        try:
            self._request(
                "HEAD", f"/v2/{self.ref.repository}/blobs/{digest}", what="the blob check"
            )
        except ImageNotFoundError:
            return False
        return True

    def upload_blob(self, source: Path | bytes, digest: str, size: int) -> None:
        """Upload a blob monolithically (POST then PUT), skipping it if already present."""
        if self.blob_exists(digest):
            log.debug("blob_exists", digest=digest)
            return
        started = self._request(
            "POST",
            f"/v2/{self.ref.repository}/blobs/uploads/",
            what="the blob upload",
            ok=(202,),
            headers={"Content-Length": "0"},
        )
        location = started.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.ref.registry} gave no upload location")
        if location.startswith("/"):
            location = f"{self._base}{location}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        # The location carries the upload's state in its query: merge, never replace, it.
        url = str(httpx.URL(location).copy_merge_params({"digest": digest}))
        if isinstance(source, bytes):
            self._request(
                "PUT",
                url,
                content=source,
                headers=headers,
                what="the blob upload",
                ok=(201,),
            )
            return
        with source.open("rb") as body:
            self._request(
                "PUT",
                url,
                content=_read_chunks(body),
                headers=headers,
                what="the blob upload",
                ok=(201,),
            )

    def fetch_blob(self, digest: str, destination: IO[bytes], *, limit: int | None = None) -> int:
        """Stream the blob ``digest`` into ``destination``, verify its hash, return its size."""
        response = self._request(
            "GET",
            f"/v2/{self.ref.repository}/blobs/{digest}",
            stream=True,
            what=f"the blob {digest}",
        )
        hasher = hashlib.sha256()
        size = 0
        try:
            for chunk in response.iter_bytes(CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise RegistryError(
                        f"blob {digest} of {self.ref} is larger than the {limit}-byte limit"
                    )
                hasher.update(chunk)
                destination.write(chunk)
        finally:
            response.close()
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise DigestMismatchError(
                f"blob of {self.ref} named {digest} hashes to {actual}; the registry storage is "
                "corrupt or a proxy altered it, re-push the image"
            )
        return size


def _basic_header(creds: Credentials) -> str:
    token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    return f"Basic {token}"


def _read_chunks(body: IO[bytes]) -> Iterator[bytes]:
    while chunk := body.read(CHUNK):
        yield chunk
