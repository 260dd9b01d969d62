"""Access control as kube-apiserver applies it to each request: authentication (client
certificates, the admin token, ServiceAccount tokens, anonymous), impersonation, authorisation,
and the review APIs built on them (access reviews, rules reviews, ``whoami``, TokenReview,
TokenRequest)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from kaito.apimachinery import FieldError
from kaito.cluster._auth._rbac import (
    AlwaysAllow,
    Attributes,
    Authorizer,
    Decision,
    RbacAuthorizer,
    forbidden_message,
)
from kaito.cluster._auth._tokens import (
    DEFAULT_EXPIRATION_SECONDS,
    POD_TOKEN_EXPIRATION_SECONDS,
    BoundObject,
    IssuedToken,
    ServiceAccountTokens,
)
from kaito.cluster._auth._user import (
    ADMIN,
    ALL_AUTHENTICATED,
    ANONYMOUS,
    LOOPBACK_ADMIN,
    UserInfo,
    service_account_groups,
    split_service_account,
)
from kaito.cluster._errors import StatusError, bad_request, invalid, unauthorized
from kaito.cluster._meta import TimeSource, format_time
from kaito.cluster._store import Storage

__all__ = ("AUTHORIZATION_MODES", "REVIEW_RESOURCES", "AccessControl")

log = structlog.get_logger(__name__)

AUTHORIZATION_MODES = ("AlwaysAllow", "RBAC")
REVIEW_RESOURCES = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authentication.k8s.io", "tokenreviews"),
}
"""Create-only resources answered from the request alone, never stored."""
_IMPERSONATE_USER = "Impersonate-User"
_IMPERSONATE_GROUP = "Impersonate-Group"
_IMPERSONATE_UID = "Impersonate-Uid"
_IMPERSONATE_EXTRA = "impersonate-extra-"


def _forbidden(attributes: Attributes, reason: str) -> StatusError:
    message = forbidden_message(attributes)
    if reason:
        message = f"{message}: {reason}"
    if not attributes.resource_request:
        return StatusError(403, "Forbidden", f"forbidden: {message}", {})
    group = attributes.api_group
    qualified = f"{attributes.resource}.{group}" if group else attributes.resource
    details: dict[str, Any] = {"kind": attributes.resource}
    if group:
        details["group"] = group
    if attributes.name:
        details["name"] = attributes.name
        text = f'{qualified} "{attributes.name}" is forbidden: {message}'
    else:
        text = f"{qualified} is forbidden: {message}"
    return StatusError(403, "Forbidden", text, details)


class AccessControl:
    """Authenticates, impersonates and authorises requests; answers the review APIs.

    ``require_authentication`` off (plain HTTP on loopback, the test default) treats requests
    without credentials as the loopback administrator, as kube-apiserver's old insecure port
    did; presented credentials are still checked.
    """

    def __init__(
        self,
        store: Storage,
        clock: TimeSource,
        *,
        authorization: str = "AlwaysAllow",
        admin_token: str | None = None,
        require_authentication: bool = False,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        if authorization not in AUTHORIZATION_MODES:
            raise ValueError(
                f"authorization={authorization!r} is not supported; use one of: "
                + ", ".join(AUTHORIZATION_MODES)
            )
        self._clock = clock
        self.tokens = tokens or ServiceAccountTokens(store, clock)
        self.authorizer: Authorizer = (
            RbacAuthorizer(store) if authorization == "RBAC" else AlwaysAllow()
        )
        self._admin_token = admin_token.encode() if admin_token else None
        self.require_authentication = require_authentication

    @property
    def authorization_mode(self) -> str:
        """``AlwaysAllow`` or ``RBAC``."""
        return self.authorizer.mode

    def close(self) -> None:
        """Release storage listeners."""
        if isinstance(self.authorizer, RbacAuthorizer):
            self.authorizer.close()

    @property
    def trivial(self) -> bool:
        """Every request without credentials is the administrator and allowed: nothing to do
        for requests that carry no credentials and impersonate no one."""
        return not self.require_authentication and isinstance(self.authorizer, AlwaysAllow)

    # ---------------------------------------------------------------- authentication

    async def authenticate(self, authorization: str, certificate_user: UserInfo | None) -> UserInfo:
        """The user of a request from its ``Authorization`` header and verified client
        certificate; anonymous (or the loopback administrator) without credentials.

        Raises:
            StatusError: 401 for credentials that do not authenticate.
        """
        if certificate_user is not None:
            return certificate_user
        scheme, _, credential = authorization.partition(" ")
        if authorization:
            if scheme.lower() != "bearer" or not credential.strip():
                raise unauthorized()
            user = await self.authenticate_token(credential.strip())
            if user is None:
                raise unauthorized()
            return user
        return ANONYMOUS if self.require_authentication else LOOPBACK_ADMIN

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] = ()
    ) -> UserInfo | None:
        """The user of a bearer token (the admin token or a ServiceAccount token)."""
        if (
            self._admin_token is not None
            and not audiences
            and hmac.compare_digest(token.encode(), self._admin_token)
        ):
            return ADMIN
        accepted = await self.tokens.authenticate(token, audiences)
        return accepted[0] if accepted else None

    async def impersonate(self, user: UserInfo, headers: Mapping[str, str]) -> UserInfo:
        """Act as the user named by ``Impersonate-*`` headers, when ``user`` may impersonate
        them (verb ``impersonate`` on users, groups, uids or serviceaccounts).

        Raises:
            StatusError: 403 in kube-apiserver's words when impersonation is not allowed.
        """
        name = headers.get(_IMPERSONATE_USER, "")
        groups = list(_header_values(headers, _IMPERSONATE_GROUP))
        uid = headers.get(_IMPERSONATE_UID, "")
        extra: dict[str, tuple[str, ...]] = {}
        for key in headers:
            if key.lower().startswith(_IMPERSONATE_EXTRA):
                extra_key = key[len(_IMPERSONATE_EXTRA) :].lower()
                extra[extra_key] = tuple(_header_values(headers, key))
        if not name:
            if groups or uid or extra:
                raise bad_request(
                    "requested User.Groups, User.UID or User.Extra without impersonating a user"
                )
            return user
        account = split_service_account(name)
        if account is not None:
            await self._check_impersonation(
                user, "serviceaccounts", account[1], namespace=account[0]
            )
        else:
            await self._check_impersonation(user, "users", name)
        for group in groups:
            await self._check_impersonation(user, "groups", group)
        if uid:
            await self._check_impersonation(user, "uids", uid, api_group="authentication.k8s.io")
        for key, values in extra.items():
            for value in values:
                await self._check_impersonation(
                    user, f"userextras/{key}", value, api_group="authentication.k8s.io"
                )
        if account is not None and not groups:
            groups = list(service_account_groups(account[0]))
        if name != ANONYMOUS.name and ALL_AUTHENTICATED not in groups:
            groups.append(ALL_AUTHENTICATED)
        return UserInfo(name, uid=uid, groups=tuple(groups), extra=extra)

    async def _check_impersonation(
        self,
        user: UserInfo,
        resource: str,
        name: str,
        *,
        namespace: str = "",
        api_group: str = "",
    ) -> None:
        resource, _, subresource = resource.partition("/")
        attributes = Attributes(
            user,
            "impersonate",
            api_group=api_group,
            api_version="v1",
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
        )
        decision = await self.authorizer.authorize(attributes)
        if not decision.allowed:
            raise _forbidden(attributes, decision.reason)

    # ---------------------------------------------------------------- authorisation

    async def authorize(self, attributes: Attributes, *, public: bool = False) -> None:
        """Let the request through or raise.

        ``public`` paths (``/version``, ``/healthz``, ...) are open to anonymous users; every
        other anonymous request is refused with 401 when authentication is required.

        Raises:
            StatusError: 401 for anonymous requests, 403 in kube-apiserver's words.
        """
        if attributes.user is ANONYMOUS or attributes.user.name == ANONYMOUS.name:
            if public:
                return
            raise unauthorized()
        decision = await self.authorizer.authorize(attributes)
        if not decision.allowed:
            log.info(
                "request_forbidden",
                user=attributes.user.name,
                verb=attributes.verb,
                resource=attributes.resource or attributes.path,
                namespace=attributes.namespace,
            )
            raise _forbidden(attributes, decision.reason)

    # ---------------------------------------------------------------- review APIs

    async def review(
        self, resource: str, namespace: str, body: Any, user: UserInfo
    ) -> dict[str, Any]:
        """Answer a ``create`` of one of :data:`REVIEW_RESOURCES`; returns the object with
        its ``status``.

        Raises:
            StatusError: 400/422 for bodies that are not a valid review.
        """
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        out = {**body, "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}}
        if resource == "selfsubjectreviews":
            out["status"] = {"userInfo": user.to_json()}
            return out
        if resource == "tokenreviews":
            out["status"] = await self._token_review(spec)
            return out
        if resource == "selfsubjectrulesreviews":
            rules = await self.authorizer.rules_for(user, str(spec.get("namespace") or ""))
            out["status"] = rules.status()
            return out
        kind = {
            "selfsubjectaccessreviews": "SelfSubjectAccessReview",
            "subjectaccessreviews": "SubjectAccessReview",
            "localsubjectaccessreviews": "LocalSubjectAccessReview",
        }[resource]
        subject = user if resource == "selfsubjectaccessreviews" else _subject(kind, spec)
        attributes = _review_attributes(kind, spec, subject, namespace)
        decision: Decision = await self.authorizer.authorize(attributes)
        status: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:
            status["reason"] = decision.reason
        if decision.evaluation_error:
            status["evaluationError"] = decision.evaluation_error
        out["status"] = status
        return out

    async def _token_review(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            return {"authenticated": False, "error": "token is required"}
        audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)]
        if token.count(".") == 2:
            accepted = await self.tokens.authenticate(token, audiences)
            if accepted is not None:
                user, matched = accepted
                return {"authenticated": True, "user": user.to_json(), "audiences": list(matched)}
        elif not audiences:
            found = await self.authenticate_token(token)
            if found is not None:
                return {"authenticated": True, "user": found.to_json()}
        return {"authenticated": False, "error": "invalid bearer token"}

    async def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """``POST serviceaccounts/NAME/token``: a signed token for the ServiceAccount.

        Raises:
            StatusError: 404 when the ServiceAccount (or the bound object) does not exist,
                422 for an invalid request.
        """
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)]
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_EXPIRATION_SECONDS
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            error = FieldError("Invalid", "spec.expirationSeconds", seconds, "must be an integer")
            raise invalid("authentication.k8s.io", "TokenRequest", name, [error])
        ref = spec.get("boundObjectRef")
        bound = None
        if isinstance(ref, dict):
            bound = BoundObject(str(ref.get("kind", "")), str(ref.get("name", "")),
                                str(ref.get("uid") or ""))  # fmt: skip
        issued = await self.tokens.issue(
            namespace, name, audiences=audiences, expiration_seconds=seconds, bound=bound
        )
        out_spec = {**spec, "audiences": audiences or list(self.tokens.api_audiences)}
        out_spec["expirationSeconds"] = seconds
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": format_time(self._clock()),
            },
            "spec": out_spec,
            "status": {
                "token": issued.token,
                "expirationTimestamp": format_time(issued.expiration),
            },
        }

    async def pod_token(
        self,
        namespace: str,
        service_account: str,
        *,
        pod_name: str,
        pod_uid: str,
        audiences: Sequence[str] = (),
        expiration_seconds: int = POD_TOKEN_EXPIRATION_SECONDS,
    ) -> IssuedToken:
        """The projected token a kubelet mounts into a Pod (bound to the Pod)."""
        return await self.tokens.issue(
            namespace,
            service_account,
            audiences=audiences,
            expiration_seconds=expiration_seconds,
            bound=BoundObject("Pod", pod_name, pod_uid),
        )


def _header_values(headers: Mapping[str, str], key: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(key, [])]
    value = headers.get(key)
    return [value] if value else []


def _subject(kind: str, spec: Mapping[str, Any]) -> UserInfo:
    user = spec.get("user") or ""
    groups = [g for g in spec.get("groups") or [] if isinstance(g, str)]
    if not user and not groups:
        error = FieldError(
            "Invalid", "spec.user", user, "at least one of user or group must be specified"
        )
        raise invalid("authorization.k8s.io", kind, "", [error])
    extra = {
        str(k): tuple(str(x) for x in v)
        for k, v in (spec.get("extra") or {}).items()
        if isinstance(v, list)
    }
    return UserInfo(str(user), uid=str(spec.get("uid") or ""), groups=tuple(groups), extra=extra)


def _review_attributes(
    kind: str, spec: Mapping[str, Any], user: UserInfo, namespace: str
) -> Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        error = FieldError(
            "Invalid",
            "spec.resourceAttributes",
            None,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
        raise invalid("authorization.k8s.io", kind, "", [error])
    if isinstance(non_resource, dict):
        return Attributes(
            user,
            str(non_resource.get("verb") or ""),
            resource_request=False,
            path=str(non_resource.get("path") or ""),
        )
    assert isinstance(resource, dict)
    target_namespace = str(resource.get("namespace") or "")
    if kind == "LocalSubjectAccessReview" and target_namespace not in ("", namespace):
        error = FieldError(
            "Invalid",
            "spec.resourceAttributes.namespace",
            target_namespace,
            "must match metadata.namespace",
        )
        raise invalid("authorization.k8s.io", kind, "", [error])
    if kind == "LocalSubjectAccessReview":
        target_namespace = namespace
    return Attributes(
        user,
        str(resource.get("verb") or ""),
        api_group=str(resource.get("group") or ""),
        api_version=str(resource.get("version") or ""),
        resource=str(resource.get("resource") or ""),
        subresource=str(resource.get("subresource") or ""),
        namespace=target_namespace,
        name=str(resource.get("name") or ""),
    )
