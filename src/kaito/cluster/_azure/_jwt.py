"""Compact JWTs (HS256) for the emulated Entra tenant: access tokens and the cluster's service
account tokens that workload identity exchanges."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ("JwtError", "decode_jwt", "encode_jwt")

#: Tokens longer than this are refused before any parsing (a limit on every input).
MAX_TOKEN_BYTES = 16 * 1024


class JwtError(ValueError):
    """The token is malformed, forged, expired or not for this audience."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: Mapping[str, Any], key: bytes) -> str:
    """Sign ``claims`` with HMAC-SHA256."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def decode_jwt(
    token: str, key: bytes, *, audience: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """Verify the signature, ``nbf``/``exp`` and (optionally) ``aud``; return the claims."""
    if len(token) > MAX_TOKEN_BYTES:
        raise JwtError("the token is too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("the token is not a JWT (header.payload.signature)")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as err:
        raise JwtError("the token is not valid base64url JSON") from err
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise JwtError("the token's algorithm is not accepted")
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise JwtError("the token's signature is invalid")
    moment = time.time() if now is None else now
    if float(claims.get("exp", 0)) <= moment:
        raise JwtError("the token has expired")
    if float(claims.get("nbf", 0)) > moment + 300:
        raise JwtError("the token is not valid yet")
    if audience is not None and claims.get("aud") != audience:
        raise JwtError(f"the token's audience is not {audience!r}")
    return claims
