"""ServiceAccount tokens: signed JWTs with audiences and an expiry, issued through the TokenRequest
API (``kubectl create token``) or for a kubelet to mount into a Pod, and validated on every
request as kube-apiserver validates bound tokens (signature, issuer, audience, time, and the
ServiceAccount and bound object still existing with the same uid)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kaito.apimachinery import FieldError, not_supported
from kaito.cluster._auth._user import UserInfo, service_account_groups, service_account_user
from kaito.cluster._errors import invalid, not_found
from kaito.cluster._json import loads
from kaito.cluster._meta import TimeSource
from kaito.cluster._store import GroupResource, Storage

__all__ = (
    "DEFAULT_EXPIRATION_SECONDS",
    "ISSUER",
    "MIN_EXPIRATION_SECONDS",
    "POD_TOKEN_EXPIRATION_SECONDS",
    "BoundObject",
    "IssuedToken",
    "ServiceAccountTokens",
)

log = structlog.get_logger(__name__)

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
POD_TOKEN_EXPIRATION_SECONDS = 3607
"""What kube-apiserver's ServiceAccount admission gives the projected token of a Pod."""
_LEEWAY = dt.timedelta(seconds=60)
_BOUND_RESOURCES = {
    "Pod": GroupResource("", "pods"),
    "Secret": GroupResource("", "secrets"),
    "Node": GroupResource("", "nodes"),
}


@attrs.frozen
class BoundObject:
    """The object a token is bound to (``spec.boundObjectRef``): the token dies with it."""

    kind: str
    name: str
    uid: str = ""


@attrs.frozen
class IssuedToken:
    """A signed token and when it expires."""

    token: str = attrs.field(repr=False)
    expiration: dt.datetime


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ServiceAccountTokens:
    """Issues and validates ServiceAccount JWTs (ES256, one key per cluster, made on first use)."""

    def __init__(
        self,
        store: Storage,
        clock: TimeSource,
        *,
        issuer: str = ISSUER,
        api_audiences: Sequence[str] = (),
    ) -> None:
        self._store = store
        self._clock = clock
        self.issuer = issuer
        self.api_audiences = tuple(api_audiences) or (issuer,)
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._key_id = ""

    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
            der = self._key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self._key_id = _b64url(hashlib.sha256(der).digest())
        return self._key

    async def _object(self, gr: GroupResource, namespace: str, name: str) -> dict[str, Any] | None:
        stored = await self._store.get(gr, namespace, name)
        if stored is None:
            return None
        obj: dict[str, Any] = loads(stored.data)
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        return obj

    async def issue(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        bound: BoundObject | None = None,
    ) -> IssuedToken:
        """Sign a token for ServiceAccount ``namespace/name``.

        Raises:
            StatusError: the ServiceAccount or the bound object does not exist (404), or the
                request is invalid (422).
        """
        account = await self._object(GroupResource("", "serviceaccounts"), namespace, name)
        if account is None:
            raise not_found("", "serviceaccounts", name)
        if expiration_seconds < MIN_EXPIRATION_SECONDS:
            error = FieldError(
                "Invalid",
                "spec.expirationSeconds",
                expiration_seconds,
                "may not specify a duration less than 10 minutes",
            )
            raise invalid("authentication.k8s.io", "TokenRequest", name, [error])
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
        }
        if bound is not None:
            private.update(await self._bound_claims(namespace, bound))
        now = self._clock().astimezone(dt.UTC).replace(microsecond=0)
        expiration = now + dt.timedelta(seconds=expiration_seconds)
        claims = {
            "aud": list(audiences) or list(self.api_audiences),
            "exp": int(expiration.timestamp()),
            "iat": int(now.timestamp()),
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": int(now.timestamp()),
            "sub": service_account_user(namespace, name),
        }
        key = self._signing_key()
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": self._key_id})
        log.info(
            "service_account_token_issued",
            namespace=namespace,
            service_account=name,
            audiences=claims["aud"],
            expires=expiration.isoformat(),
            bound=bound.kind if bound else None,
        )
        return IssuedToken(token, expiration)

    async def _bound_claims(self, namespace: str, bound: BoundObject) -> dict[str, Any]:
        gr = _BOUND_RESOURCES.get(bound.kind)
        if gr is None:
            error = not_supported("spec.boundObjectRef.kind", bound.kind, ("Node", "Pod", "Secret"))
            raise invalid("authentication.k8s.io", "TokenRequest", "", [error])
        obj = await self._object(gr, "" if bound.kind == "Node" else namespace, bound.name)
        uid = (obj or {}).get("metadata", {}).get("uid", "")
        if obj is None or (bound.uid and bound.uid != uid):
            raise not_found("", gr.resource, bound.name)
        claims: dict[str, Any] = {bound.kind.lower(): {"name": bound.name, "uid": uid}}
        node_name = (obj.get("spec") or {}).get("nodeName") if bound.kind == "Pod" else None
        if node_name:
            node = await self._object(_BOUND_RESOURCES["Node"], "", node_name)
            if node is not None:
                claims["node"] = {"name": node_name, "uid": node["metadata"]["uid"]}
        return claims

    async def authenticate(
        self, token: str, audiences: Sequence[str] = ()
    ) -> tuple[UserInfo, tuple[str, ...]] | None:
        """The ServiceAccount user of ``token`` and the audiences it was accepted for (of
        ``audiences``, by default the API server's); ``None`` when it is not a valid token of
        this issuer (expired, wrong audience, bad signature, ServiceAccount or bound object
        gone)."""
        if self._key is None or token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["ES256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError as error:
            log.info("token_rejected", reason=f"invalid: {type(error).__name__}")
            return None
        return await self._validate(claims, tuple(audiences) or self.api_audiences)

    async def _validate(
        self, claims: dict[str, Any], wanted: tuple[str, ...]
    ) -> tuple[UserInfo, tuple[str, ...]] | None:
        if claims.get("iss") != self.issuer:
            log.info("token_rejected", reason="issuer")
            return None
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences or []
        accepted = tuple(a for a in wanted if a in audiences)
        if not accepted:
            log.info("token_rejected", reason="audience", audiences=audiences)
            return None
        now = self._clock().astimezone(dt.UTC)
        try:
            expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
            not_before = dt.datetime.fromtimestamp(int(claims.get("nbf", 0)), dt.UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            log.info("token_rejected", reason="times")
            return None
        if now > expires + _LEEWAY:
            log.info("token_rejected", reason="expired", expired=expires.isoformat())
            return None
        if now + _LEEWAY < not_before:
            log.info("token_rejected", reason="not yet valid")
            return None
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        namespace = private.get("namespace")
        account = private.get("serviceaccount") or {}
        if not isinstance(namespace, str) or not isinstance(account, dict):
            return None
        name = account.get("name", "")
        stored = await self._object(GroupResource("", "serviceaccounts"), namespace, name)
        if stored is None or stored["metadata"]["uid"] != account.get("uid"):
            log.info("token_rejected", reason="service account gone", namespace=namespace)
            return None
        extra: dict[str, tuple[str, ...]] = {
            "authentication.kubernetes.io/credential-id": (f"JTI={claims.get('jti', '')}",)
        }
        for kind, gr in _BOUND_RESOURCES.items():
            ref = private.get(kind.lower())
            if not isinstance(ref, dict):
                continue
            if kind != "Node" or "pod" not in private:
                obj = await self._object(
                    gr, "" if kind == "Node" else namespace, ref.get("name", "")
                )
                if obj is None or obj["metadata"]["uid"] != ref.get("uid"):
                    log.info("token_rejected", reason=f"bound {kind.lower()} gone")
                    return None
            if kind in ("Pod", "Node"):
                extra[f"authentication.kubernetes.io/{kind.lower()}-name"] = (ref.get("name", ""),)
                extra[f"authentication.kubernetes.io/{kind.lower()}-uid"] = (ref.get("uid", ""),)
        user = UserInfo(
            service_account_user(namespace, name),
            uid=stored["metadata"]["uid"],
            groups=service_account_groups(namespace),
            extra=extra,
        )
        return user, accepted
