"""The Azure Resource Manager front end of the AKS emulator: routing, the api-version check,
bearer token authentication, role-based authorization, throttling, and ARM's error envelope.

Served paths (case-insensitive, as ARM's):

- ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/
  {cluster}/agentPools[/{name}]``: LIST, GET, PUT, DELETE;
- ``/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{loc}/operations/{id}``
  (``Azure-AsyncOperation``) and ``.../operationresults/{id}`` (``Location``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import anyio
import structlog
from aiohttp import web

from kaito.cluster._azure._jwt import JwtError
from kaito.cluster._azure._pools import ArmError

if TYPE_CHECKING:
    from kaito.cluster._azure._emulator import AzureEmulator

__all__ = ("SUPPORTED_API_VERSIONS", "ArmFrontEnd")

log = structlog.get_logger(__name__)

#: The agent pool api-versions the emulated resource provider serves.
SUPPORTED_API_VERSIONS: Final = (
    "2026-08-01",
    "2026-02-01",
    "2025-10-01",
    "2025-07-01",
    "2025-01-01",
    "2024-10-01",
    "2024-09-01",
    "2024-05-01",
)
OPERATIONS_API_VERSION: Final = "2016-03-30"
MAX_BODY_BYTES: Final = 1024 * 1024
REQUEST_SECONDS: Final = 30.0
_ACTIONS: Final = {
    "GET": "Microsoft.ContainerService/managedClusters/agentPools/read",
    "PUT": "Microsoft.ContainerService/managedClusters/agentPools/write",
    "DELETE": "Microsoft.ContainerService/managedClusters/agentPools/delete",
}

Hook = Callable[[str, str], Awaitable[None]]


def _lower(parts: list[str], index: int) -> str:
    return parts[index].lower() if len(parts) > index else ""


class ArmFrontEnd:
    """The aiohttp handler of the emulated ARM endpoint (one per emulator)."""

    def __init__(self, emulator: AzureEmulator) -> None:
        self.emulator = emulator

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one ARM request (bounded in time; errors in ARM's envelope)."""
        request_id = str(uuid.uuid4())
        try:
            with anyio.fail_after(REQUEST_SECONDS):
                response = await self._route(request)
        except ArmError as err:
            response = web.json_response(err.body(), status=err.status, headers=err.headers)
        except TimeoutError:
            response = web.json_response(
                {
                    "error": {
                        "code": "GatewayTimeout",
                        "message": "The gateway did not receive a "
                        "response from 'Microsoft.ContainerService' within the specified "
                        "time period.",
                    }
                },
                status=504,
            )
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-correlation-request-id"] = request_id
        return response

    async def _route(self, request: web.Request) -> web.StreamResponse:
        emu = self.emulator
        parts = [p for p in request.path.split("/") if p]
        verb = "read" if request.method == "GET" else "write"
        self._throttle(verb, parts)
        claims = self._authenticate(request)
        if _lower(parts, 0) != "subscriptions" or len(parts) < 2:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource path '{request.path}' is not served by this endpoint.",
            )
        if parts[1].lower() != emu.subscription_id.lower():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{parts[1]}' could not be found."
            )
        if _lower(parts, 2) == "providers" and _lower(parts, 4) == "locations":
            return self._operation(request, parts)
        api_version = request.query.get("api-version")
        if api_version is None:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        emu.api_versions[api_version] += 1
        if api_version not in emu.served_api_versions:
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider "
                f"found for location '{emu.location}' and API version '{api_version}' "
                "for type 'managedClusters'. The supported api-versions are "
                f"'{', '.join(emu.served_api_versions)}'. The supported locations are "
                f"'{emu.location}'.",
            )
        self._check_cluster(parts)
        if _lower(parts, 8) != "agentpools":
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{'/'.join(parts[6:])}'"
                " could not be found in the namespace 'Microsoft.ContainerService' "
                f"for api version '{api_version}'.",
            )
        name = parts[9] if len(parts) > 9 else None
        self._authorize(claims, request.method, request.path)
        emu.requests[f"{request.method} agentPools{'' if name else ' (list)'}"] += 1
        if name is None:
            if request.method != "GET":
                raise ArmError(
                    405,
                    "MethodNotAllowed",
                    f"The requested resource does not support http method '{request.method}'.",
                )
            return self._list(request)
        if request.method == "GET":
            pool = emu.pools.get(name)
            if pool is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"Agent Pool not found: could not find agent pool "
                    f"'{name}' in managed cluster '{emu.cluster_name}'.",
                )
            return web.json_response(pool.body(emu.pool_id(name)))
        if request.method == "PUT":
            return await self._put(request, name)
        if request.method == "DELETE":
            return await self._delete(name)
        raise ArmError(
            405,
            "MethodNotAllowed",
            f"The requested resource does not support http method '{request.method}'.",
        )

    # -- checks ---------------------------------------------------------------------------

    def _throttle(self, verb: str, parts: list[str]) -> None:
        emu = self.emulator
        fault = emu.faults.match(("throttle",), verb=verb)
        if fault is None:
            return
        emu.requests["throttled"] += 1
        sub = parts[1] if len(parts) > 1 else emu.subscription_id
        limit = 1200 if verb == "write" else 12000
        raise ArmError(
            429,
            "SubscriptionRequestsThrottled",
            fault.message
            or f"Number of '{verb}' requests for subscription '{sub}' actually exceeded the "
            f"limit of '{limit}' for time interval '01:00:00'. Please try again after "
            f"'{fault.retry_after}' seconds.",
            headers={
                "Retry-After": str(fault.retry_after),
                f"x-ms-ratelimit-remaining-subscription-{verb}s": "0",
            },
        )

    def _authenticate(self, request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        try:
            return self.emulator.tenant.verify_access_token(token.strip())
        except JwtError as err:
            code = (
                "ExpiredAuthenticationToken"
                if "expired" in str(err)
                else ("InvalidAuthenticationToken")
            )
            raise ArmError(401, code, f"The access token is invalid: {err}.") from None

    def _check_cluster(self, parts: list[str]) -> None:
        emu = self.emulator
        if _lower(parts, 2) != "resourcegroups" or len(parts) < 4:
            raise ArmError(
                404, "InvalidResourceType", "The resource group is missing from the path."
            )
        if parts[3].lower() != emu.resource_group.lower():
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found."
            )
        if (
            _lower(parts, 4) != "providers"
            or _lower(parts, 5) != "microsoft.containerservice"
            or _lower(parts, 6) != "managedclusters"
            or _lower(parts, 7) != emu.cluster_name.lower()
        ):
            name = parts[7] if len(parts) > 7 else ""
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerService/"
                f"managedClusters/{name}' under resource group '{parts[3]}' was not "
                "found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )

    def _authorize(self, claims: dict[str, Any], method: str, path: str) -> None:
        emu = self.emulator
        object_id = str(claims.get("oid", ""))
        if object_id in emu.role_assignments:
            return
        action = _ACTIONS.get(method, _ACTIONS["GET"])
        raise ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{claims.get('appid')}' with "
            f"object id '{object_id}' does not have authorization to perform action "
            f"'{action}' over scope '{path}' or the scope is invalid. If access was "
            "recently granted, please refresh your credentials.",
        )

    # -- verbs ----------------------------------------------------------------------------

    def _list(self, request: web.Request) -> web.Response:
        emu = self.emulator
        names = sorted(emu.pools)
        try:
            start = int(request.query.get("$skipToken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is invalid.") from None
        page = names[start : start + emu.page_size]
        body: dict[str, Any] = {
            "value": [emu.pools[n].body(emu.pool_id(n)) for n in page if n in emu.pools]
        }
        if start + emu.page_size < len(names):
            url = request.url.update_query({"$skipToken": str(start + emu.page_size)})
            body["nextLink"] = str(emu.public_url(url.path_qs))
        return web.json_response(body)

    async def _put(self, request: web.Request, name: str) -> web.Response:
        emu = self.emulator
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            raise ArmError(413, "RequestEntityTooLarge", "The request body is too large.")
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            ) from None
        await emu.hook("before", "PUT", name)
        status, pool, operation = emu.put_pool(name, body)
        await emu.hook("after", "PUT", name)
        return web.json_response(
            pool.body(emu.pool_id(name)),
            status=status,
            headers={"Azure-AsyncOperation": emu.operation_url(operation.id), **emu.retry_hint()},
        )

    async def _delete(self, name: str) -> web.Response:
        emu = self.emulator
        await emu.hook("before", "DELETE", name)
        operation = emu.delete_pool(name)
        await emu.hook("after", "DELETE", name)
        if operation is None:
            return web.Response(status=204)
        return web.Response(
            status=202,
            headers={
                "Azure-AsyncOperation": emu.operation_url(operation.id),
                "Location": emu.operation_url(operation.id, result=True),
                **emu.retry_hint(),
            },
        )

    def _operation(self, request: web.Request, parts: list[str]) -> web.Response:
        emu = self.emulator
        kind = _lower(parts, 6)
        op_id = parts[7] if len(parts) > 7 else ""
        operation = emu.operations.get(op_id)
        if kind not in ("operations", "operationresults") or operation is None:
            raise ArmError(404, "NotFound", f"Operation '{op_id}' was not found.")
        emu.requests[f"GET {kind}"] += 1
        if kind == "operations":
            return web.json_response(operation.body(), headers=emu.retry_hint())
        if not operation.done:
            return web.Response(
                status=202,
                headers={"Location": emu.operation_url(op_id, result=True), **emu.retry_hint()},
            )
        if operation.status == "Failed" and operation.error:
            raise ArmError(400, operation.error["code"], operation.error["message"])
        return web.Response(status=204)
