"""Admission webhooks: call ``admission.k8s.io/v1 AdmissionReview`` endpoints registered by
Mutating/ValidatingWebhookConfigurations over HTTPS (``caBundle`` honoured), apply mutating hooks'
JSON patches, and return denials worded as kube-apiserver words them.

``reinvocationPolicy: IfNeeded`` is accepted but hooks are called once per request.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import structlog

from kaito.apimachinery import JsonPatchError, json_patch
from kaito.cluster._errors import StatusError, internal_error
from kaito.cluster._json import JSONDecodeError, Obj, dumps, loads
from kaito.cluster._resource_types import Catalog, ResourceType
from kaito.cluster._rest import AdmissionAttributes
from kaito.cluster._selectors import label_selector_from_object
from kaito.cluster._store import EventType, GroupResource, Storage, StorageEvent

__all__ = ("WebhookAdmission",)

log = structlog.get_logger(__name__)

VALIDATING = GroupResource("admissionregistration.k8s.io", "validatingwebhookconfigurations")
MUTATING = GroupResource("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
_NAMESPACES = GroupResource("", "namespaces")
_ENDPOINTS = GroupResource("", "endpoints")
_SERVICES = GroupResource("", "services")
_EXEMPT_GROUPS = frozenset({"admissionregistration.k8s.io"})


@attrs.frozen
class _Hook:
    configuration: str
    name: str
    mutating: bool
    rules: tuple[Obj, ...]
    failure_policy: str
    match_policy: str
    namespace_selector: Obj
    object_selector: Obj
    timeout: float
    client_config: Obj
    review_versions: tuple[str, ...]


def _hooks(config: Obj, mutating: bool) -> list[_Hook]:
    hooks = []
    for hook in config.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        hooks.append(
            _Hook(
                configuration=config["metadata"]["name"],
                name=str(hook.get("name", "")),
                mutating=mutating,
                rules=tuple(r for r in hook.get("rules") or [] if isinstance(r, dict)),
                failure_policy=str(hook.get("failurePolicy", "Fail")),
                match_policy=str(hook.get("matchPolicy", "Equivalent")),
                namespace_selector=hook.get("namespaceSelector") or {},
                object_selector=hook.get("objectSelector") or {},
                timeout=float(hook.get("timeoutSeconds", 10)),
                client_config=hook.get("clientConfig") or {},
                review_versions=tuple(hook.get("admissionReviewVersions") or ()),
            )
        )
    return hooks


def _matches_list(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_matches(patterns: Any, resource: str, subresource: str) -> bool:
    if not isinstance(patterns, list):
        return False
    for pattern in patterns:
        main, _, sub = str(pattern).partition("/")
        if main not in ("*", resource):
            continue
        if not sub and not subresource:
            return True
        if sub and sub in ("*", subresource):
            return True
    return False


def _rule_matches(rule: Obj, rt: ResourceType, operation: str, subresource: str) -> bool:
    if not _matches_list(rule.get("operations"), operation):
        return False
    if not _matches_list(rule.get("apiGroups"), rt.group) or not _matches_list(
        rule.get("apiVersions"), rt.version
    ):
        return False
    scope = rule.get("scope", "*")
    if (scope == "Cluster" and rt.namespaced) or (scope == "Namespaced" and not rt.namespaced):
        return False
    return _resource_matches(rule.get("resources"), rt.plural, subresource)


class WebhookAdmission:
    """The admission chain: mutating hooks, then (after validation) validating hooks."""

    def __init__(self, store: Storage, catalog: Catalog) -> None:
        self._store = store
        self._catalog = catalog
        self._configs: dict[tuple[bool, str], list[_Hook]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.service_endpoints: dict[tuple[str, str, int], str] = {}
        """``(namespace, service, port)`` to base URL; port ``0`` matches any port."""
        self._converter: Callable[[ResourceType, ResourceType, Obj], Obj] | None = None
        store.add_listener(self._on_commit)

    def set_converter(self, converter: Callable[[ResourceType, ResourceType, Obj], Obj]) -> None:
        """How to convert an object between served versions (for ``matchPolicy: Equivalent``)."""
        self._converter = converter

    def _on_commit(self, gr: GroupResource, event: StorageEvent) -> None:
        if gr not in (VALIDATING, MUTATING):
            return
        config = loads(event.obj.data)
        key = (gr == MUTATING, config["metadata"]["name"])
        if event.type is EventType.DELETED:
            self._configs.pop(key, None)
        else:
            self._configs[key] = _hooks(config, gr == MUTATING)

    def _candidates(
        self, rt: ResourceType, operation: str, subresource: str, mutating: bool
    ) -> list[tuple[_Hook, ResourceType]]:
        found = []
        for (is_mutating, _), hooks in sorted(self._configs.items()):
            if is_mutating != mutating:
                continue
            for hook in hooks:
                target = self._target(hook, rt, operation, subresource)
                if target is not None:
                    found.append((hook, target))
        return found

    def _target(
        self, hook: _Hook, rt: ResourceType, operation: str, subresource: str
    ) -> ResourceType | None:
        if any(_rule_matches(rule, rt, operation, subresource) for rule in hook.rules):
            return rt
        if hook.match_policy != "Equivalent":
            return None
        for other in self._catalog.versions(rt.group, rt.plural):
            if other is not rt and any(
                _rule_matches(rule, other, operation, subresource) for rule in hook.rules
            ):
                return other
        return None

    def active(self, rt: ResourceType, operation: str, subresource: str) -> bool:
        if not self._configs or rt.group in _EXEMPT_GROUPS:
            return False
        return bool(
            self._candidates(rt, operation, subresource, True)
            or self._candidates(rt, operation, subresource, False)
        )

    async def _selected(
        self, hook: _Hook, attributes: AdmissionAttributes, obj: Obj | None
    ) -> bool:
        objects = [o for o in (obj, attributes.old) if o is not None]
        object_selector = label_selector_from_object(hook.object_selector)
        if not any(
            object_selector.matches((o.get("metadata") or {}).get("labels")) for o in objects
        ):
            return False
        if not hook.namespace_selector or (
            not attributes.rt.namespaced and attributes.rt.plural != "namespaces"
        ):
            return True
        if attributes.rt.plural == "namespaces" and not attributes.rt.group:
            labels = ((obj or attributes.old or {}).get("metadata") or {}).get("labels")
        else:
            namespace = await self._store.get(_NAMESPACES, "", attributes.namespace)
            labels = dict(namespace.labels) if namespace is not None else {}
        return label_selector_from_object(hook.namespace_selector).matches(labels)

    async def mutate(self, attributes: AdmissionAttributes, obj: Obj) -> Obj:
        for hook, target in self._candidates(
            attributes.rt, attributes.operation, attributes.subresource, True
        ):
            if not await self._selected(hook, attributes, obj):
                continue
            response = await self._call(hook, target, attributes, obj)
            if response is None:
                continue
            patch = response.get("patch")
            if patch:
                if response.get("patchType", "JSONPatch") != "JSONPatch":
                    raise internal_error(
                        f'received invalid webhook response: webhook "{hook.name}" returned '
                        f"unsupported patchType {response.get('patchType')!r}"
                    )
                try:
                    operations = loads(base64.b64decode(patch))
                    converted = self._convert(attributes.rt, target, obj)
                    patched = json_patch(converted, operations)
                    obj = self._convert(target, attributes.rt, patched)
                except (JsonPatchError, JSONDecodeError, ValueError) as error:
                    raise internal_error(
                        f'failed to apply patch from webhook "{hook.name}": {error}'
                    ) from None
        return obj

    async def validate(self, attributes: AdmissionAttributes, obj: Obj | None) -> None:
        for hook, target in self._candidates(
            attributes.rt, attributes.operation, attributes.subresource, False
        ):
            if await self._selected(hook, attributes, obj):
                await self._call(hook, target, attributes, obj)

    async def close(self) -> None:
        """Close the HTTP client session."""
        session, self._session = self._session, None
        await _close(session)

    def _convert(self, source: ResourceType, target: ResourceType, obj: Obj) -> Obj:
        if source is target or self._converter is None:
            return obj
        return self._converter(source, target, obj)

    async def _url(self, hook: _Hook) -> tuple[str, str | None]:
        config = hook.client_config
        if config.get("url"):
            return str(config["url"]), None
        service = config.get("service") or {}
        namespace, name = str(service.get("namespace", "")), str(service.get("name", ""))
        port = int(service.get("port", 443))
        path = str(service.get("path", "") or "")
        base = self.service_endpoints.get((namespace, name, port)) or self.service_endpoints.get(
            (namespace, name, 0)
        )
        if base is None:
            base = await self._endpoint_url(namespace, name, port)
        return base.rstrip("/") + path, f"{name}.{namespace}.svc"

    async def _endpoint_url(self, namespace: str, name: str, port: int) -> str:
        """Resolve a Service to ``https://<address>:<port>`` through its Endpoints, as a real API
        server routes webhook calls to ready endpoints."""
        service = await self._store.get(_SERVICES, namespace, name)
        if service is None:
            raise LookupError(f'service "{name}" not found')
        spec = loads(service.data).get("spec") or {}
        target: Any = port
        for entry in spec.get("ports") or []:
            if entry.get("port") == port:
                target = entry.get("targetPort", port)
        endpoints = await self._store.get(_ENDPOINTS, namespace, name)
        for subset in (loads(endpoints.data).get("subsets") or []) if endpoints is not None else []:
            addresses = subset.get("addresses") or []
            ports = subset.get("ports") or []
            for candidate in ports:
                matches = (
                    target in (candidate.get("port"), candidate.get("name")) or len(ports) == 1
                )
                if matches and addresses:
                    return f"https://{addresses[0]['ip']}:{candidate['port']}"
        raise LookupError(f'no endpoints available for service "{name}"')

    def _ssl(self, hook: _Hook) -> ssl.SSLContext:
        bundle = str(hook.client_config.get("caBundle") or "")
        context = self._contexts.get(bundle)
        if context is None:
            if bundle:
                context = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
            else:
                context = ssl.create_default_context()
            self._contexts[bundle] = context
        return context

    async def _call(
        self, hook: _Hook, target: ResourceType, attributes: AdmissionAttributes, obj: Obj | None
    ) -> Obj | None:
        uid = str(uuid.uuid4())
        rt = attributes.rt
        request: Obj = {
            "uid": uid,
            "kind": {"group": target.group, "version": target.version, "kind": target.kind},
            "resource": {
                "group": target.group,
                "version": target.version,
                "resource": target.plural,
            },
            "requestKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "requestResource": {"group": rt.group, "version": rt.version, "resource": rt.plural},
            "name": attributes.name,
            "operation": attributes.operation,
            "userInfo": {
                "username": attributes.context.user,
                "uid": attributes.context.uid,
                "groups": list(attributes.context.groups),
            },
            "object": self._convert(rt, target, obj) if obj is not None else None,
            "oldObject": self._convert(rt, target, attributes.old)
            if attributes.old is not None
            else None,
            "dryRun": attributes.dry_run,
            "options": attributes.options
            or {
                "kind": f"{attributes.operation.capitalize()}Options",
                "apiVersion": "meta.k8s.io/v1",
            },
        }
        if attributes.namespace:
            request["namespace"] = attributes.namespace
        if attributes.subresource:
            request["subResource"] = request["requestSubResource"] = attributes.subresource
        review = {
            "kind": "AdmissionReview",
            "apiVersion": "admission.k8s.io/v1",
            "request": request,
        }
        url = ""
        try:
            url, server_name = await self._url(hook)
            timeout = f"{int(hook.timeout)}s"
            url += ("&" if "?" in url else "?") + f"timeout={timeout}"
            if self._session is None:
                self._session = aiohttp.ClientSession()
            kwargs: dict[str, Any] = {}
            if urlsplit(url).scheme == "https":
                kwargs["ssl"] = self._ssl(hook)
                if server_name:
                    kwargs["server_hostname"] = server_name
            async with self._session.post(
                url,
                data=dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=hook.timeout),
                **kwargs,
            ) as reply:
                if reply.status != 200:
                    raise RuntimeError(f"unexpected HTTP status {reply.status}")
                payload = loads(await reply.read())
            response = payload.get("response") if isinstance(payload, dict) else None
            if not isinstance(response, dict):
                raise RuntimeError("the response carried no AdmissionReview response")
            if response.get("uid") != uid:
                raise RuntimeError(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
        except StatusError:
            raise
        except Exception as error:
            shown = url or "service"
            log.warning(
                "webhook_call_failed",
                webhook=hook.name,
                error=str(error),
                policy=hook.failure_policy,
            )
            if hook.failure_policy == "Ignore":
                return None
            raise internal_error(
                f'failed calling webhook "{hook.name}": failed to call webhook: Post "{shown}": '
                f"{error}"
            ) from None
        for warning in response.get("warnings") or []:
            attributes.context.warnings.append(str(warning))
        if not response.get("allowed"):
            raise _denied(hook.name, response.get("status") or {})
        return response


def _denied(webhook: str, result: Obj) -> StatusError:
    prefix = f'admission webhook "{webhook}" denied the request'
    code = int(result.get("code") or 400)
    code = max(code, 400)
    if result.get("message"):
        message = f"{prefix}: {result['message']}"
    elif result.get("reason"):
        message = f"{prefix}: {result['reason']}"
    else:
        message = f"{prefix} without explanation"
    return StatusError(code, str(result.get("reason") or ""), message, result.get("details"))


async def _close(session: aiohttp.ClientSession | None) -> None:
    if session is not None:
        await session.close()
