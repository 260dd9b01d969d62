"""An emulated Microsoft Entra ID tenant: the OAuth 2.0 client-credentials token endpoint that
``azure-identity`` calls (client secrets and workload identity's federated tokens), and the
issuer of the cluster's service account tokens that workload identity exchanges."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import attrs
from aiohttp import web

from kaito.cluster._azure._jwt import JwtError, decode_jwt, encode_jwt

__all__ = ("ARM_AUDIENCE", "EntraTenant", "FederatedCredential")

ARM_AUDIENCE: Final = "https://management.azure.com"
#: How long the token endpoint waits for a request's body.
REQUEST_SECONDS: Final = 10.0
TOKEN_EXCHANGE_AUDIENCE: Final = "api://AzureADTokenExchange"
JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: The OIDC issuer the emulated cluster signs its service account tokens as.
CLUSTER_ISSUER: Final = "https://oidc.kaito-emulated.azure.local/cluster/"
_SCOPES: Final = {
    f"{ARM_AUDIENCE}/.default": ARM_AUDIENCE,
    f"{ARM_AUDIENCE}//.default": ARM_AUDIENCE,
}


@attrs.frozen
class FederatedCredential:
    """Trust tokens of ``issuer`` for ``subject`` (e.g. a service account) with ``audience``."""

    issuer: str
    subject: str
    audience: str = TOKEN_EXCHANGE_AUDIENCE


@attrs.define
class _App:
    client_id: str
    object_id: str
    secret: str | None
    federated: list[FederatedCredential] = attrs.field(factory=list)


def _error(status: int, error: str, code: int, description: str) -> web.Response:
    now = datetime.now(UTC)
    return web.json_response(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: {now:%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [code],
            "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status=status,
    )


class EntraTenant:
    """One tenant: app registrations, their secrets and federated credentials, and tokens.

    Tokens are HS256 JWTs signed with a per-tenant key, so ARM (the emulator's) can verify them;
    ``issued`` counts tokens handed out per client id.
    """

    def __init__(self, tenant_id: str | None = None, *, token_lifetime: int = 3600) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.token_lifetime = token_lifetime
        self.issued: Counter[str] = Counter()
        self._apps: dict[str, _App] = {}
        self._key = secrets.token_bytes(32)
        self._cluster_key = secrets.token_bytes(32)

    # -- registrations --------------------------------------------------------------------

    def register_app(self, client_id: str | None = None, *, secret: str | None = None) -> str:
        """Register an application (service principal); returns its client id."""
        client_id = client_id or str(uuid.uuid4())
        self._apps[client_id] = _App(client_id, str(uuid.uuid4()), secret)
        return client_id

    def set_secret(self, client_id: str, secret: str | None) -> None:
        """Rotate (or remove) an application's client secret."""
        self._apps[client_id].secret = secret

    def federate(self, client_id: str, credential: FederatedCredential) -> None:
        """Let ``client_id`` sign in with a token matching ``credential`` (workload identity)."""
        self._apps[client_id].federated.append(credential)

    def secret_of(self, client_id: str) -> str | None:
        """The application's client secret (the emulator hands it to tests and ``kaito up``)."""
        return self._apps[client_id].secret

    def object_id(self, client_id: str) -> str:
        """The service principal's object id (what role assignments name)."""
        return self._apps[client_id].object_id

    def service_account_token(
        self, subject: str, *, audience: str = TOKEN_EXCHANGE_AUDIENCE, lifetime: int = 3600
    ) -> str:
        """A projected service account token as the cluster's OIDC issuer signs it."""
        now = int(time.time())
        return encode_jwt(
            {
                "iss": CLUSTER_ISSUER,
                "sub": subject,
                "aud": audience,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime,
            },
            self._cluster_key,
        )

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of an access token this tenant issued for ARM (raises ``JwtError``)."""
        claims = decode_jwt(token, self._key, audience=ARM_AUDIENCE)
        if claims.get("tid") != self.tenant_id:
            raise JwtError("the token was issued by another tenant")
        return claims

    # -- the token endpoint ----------------------------------------------------------------

    async def handle_token(self, request: web.Request) -> web.Response:
        """``POST /{tenant}/oauth2/v2.0/token`` (client credentials grant)."""
        tenant = request.match_info["tenant"]
        if tenant not in (self.tenant_id, "organizations"):
            return _error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to "
                "make sure you have the correct tenant ID and are signing into the "
                "correct cloud.",
            )
        try:
            with anyio.fail_after(REQUEST_SECONDS):
                form = await request.post()
        except TimeoutError:
            return _error(
                408, "invalid_request", 50000, "The request body was not received in time."
            )
        fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        return self._token(fields)

    def _token(self, form: Mapping[str, str]) -> web.Response:
        if form.get("grant_type") != "client_credentials":
            return _error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = self._apps.get(client_id)
        if app is None:
            return _error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier "
                f"'{client_id}' was not found in the directory '{self.tenant_id}'.",
            )
        scope = form.get("scope", "")
        audience = _SCOPES.get(scope)
        if audience is None:
            return _error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} "
                "is not valid. Client credential flows must have a scope value with "
                "/.default suffixed to the resource identifier (application ID URI).",
            )
        if "client_assertion" in form:
            problem = self._check_assertion(app, form)
            if problem is not None:
                return problem
        elif "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(
                app.secret.encode(), form["client_secret"].encode()
            ):
                return _error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. "
                    "Ensure the secret being sent in the request is the client secret "
                    "value, not the client secret ID, for a secret added to app "
                    f"'{client_id}'.",
                )
        else:
            return _error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the "
                "following parameter: 'client_assertion' or 'client_secret'.",
            )
        now = int(time.time())
        token = encode_jwt(
            {
                "aud": audience,
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "tid": self.tenant_id,
                "appid": client_id,
                "oid": app.object_id,
                "sub": app.object_id,
                "iat": now,
                "nbf": now,
                "exp": now + self.token_lifetime,
            },
            self._key,
        )
        self.issued[client_id] += 1
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    def _check_assertion(self, app: _App, form: Mapping[str, str]) -> web.Response | None:
        if form.get("client_assertion_type") != JWT_BEARER:
            return _error(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        try:
            claims = decode_jwt(form["client_assertion"], self._cluster_key)
        except JwtError as err:
            return _error(
                400,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range or is not trusted: {err}.",
            )
        for credential in app.federated:
            if (claims.get("iss"), claims.get("sub"), claims.get("aud")) == (
                credential.issuer,
                credential.subject,
                credential.audience,
            ):
                return None
        return _error(
            400,
            "invalid_request",
            70021,
            "No matching federated identity record "
            f"found for presented assertion. Assertion Issuer: '{claims.get('iss')}'. "
            f"Assertion Subject: '{claims.get('sub')}'. Assertion Audience: "
            f"'{claims.get('aud')}'.",
        )
