"""A container's environment as the kubelet builds it: ``envFrom`` first, then ``env`` in order
(literals with ``$(VAR)`` expanded from what came before, ``valueFrom`` from ConfigMaps, Secrets
and the downward API), then the image's own variables underneath."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping

import attrs

from kaito.cluster._json import Obj
from kaito.cluster._kubelet._expand import expand
from kaito.cluster._kubelet._fields import ContainerConfigError, PodFacts

__all__ = ("EnvResult", "ObjectLookup", "build_env", "decode_secret_value")

ObjectLookup = Callable[[str, str, str], Awaitable[Obj | None]]
"""``lookup(kind, namespace, name)`` -> the ConfigMap or Secret, or ``None`` when it is missing."""


@attrs.frozen
class EnvResult:
    """The container's variables in kubelet order, and the envFrom keys it had to skip."""

    env: dict[str, str]
    skipped: list[tuple[str, str, list[str]]]
    """``(kind, "namespace/name", keys)`` of envFrom keys that are not valid variable names."""


def _valid_name(name: str) -> bool:
    # Kubernetes 1.32 (RelaxedEnvironmentVariableValidation): printable ASCII but '='.
    return bool(name) and all(" " <= ch <= "~" for ch in name) and "=" not in name


def decode_secret_value(value: str) -> bytes:
    """A Secret's ``data`` value (base64) as bytes."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="surrogateescape")


async def _source(
    lookup: ObjectLookup, kind: str, namespace: str, name: str, optional: bool
) -> Obj | None:
    obj = await lookup(kind, namespace, name)
    if obj is None and not optional:
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return obj


async def build_env(
    container: Obj,
    facts: PodFacts,
    lookup: ObjectLookup,
    *,
    service_env: Mapping[str, str] | None = None,
) -> EnvResult:
    """The container's environment (without the image's variables).

    Raises:
        ContainerConfigError: a ConfigMap, Secret or key it needs is missing, or a field reference
            is not supported; the message is the kubelet's.
    """
    namespace = str(facts.meta.get("namespace", ""))
    services = dict(service_env or {})
    env: dict[str, str] = {}
    skipped: list[tuple[str, str, list[str]]] = []
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(ref_key)
            if not ref:
                continue
            obj = await _source(
                lookup, kind, namespace, str(ref.get("name", "")), bool(ref.get("optional"))
            )
            if obj is None:
                continue
            invalid: list[str] = []
            for key, value in sorted((obj.get("data") or {}).items()):
                name = prefix + key
                if not _valid_name(name):
                    invalid.append(name)
                    continue
                env[name] = _text(decode_secret_value(value)) if kind == "Secret" else str(value)
            if invalid:
                skipped.append((kind, f"{namespace}/{ref.get('name', '')}", invalid))
    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value") or ""), env, services)
            continue
        if "fieldRef" in source:
            env[name] = facts.field(str(source["fieldRef"].get("fieldPath", "")))
        elif "resourceFieldRef" in source:
            env[name] = facts.resource(source["resourceFieldRef"], container.get("name"))
        else:
            for kind, ref_key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = source.get(ref_key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                ref_name = str(ref.get("name", ""))
                obj = await _source(lookup, kind, namespace, ref_name, optional)
                if obj is None:
                    break
                key = str(ref.get("key", ""))
                data = obj.get("data") or {}
                if key not in data:
                    if optional:
                        break
                    raise ContainerConfigError(
                        f"couldn't find key {key} in {kind} {namespace}/{ref_name}"
                    )
                env[name] = (
                    _text(decode_secret_value(data[key])) if kind == "Secret" else str(data[key])
                )
                break
    for name, value in services.items():
        env.setdefault(name, value)
    return EnvResult(env, skipped)
