"""The downward API: the values of ``fieldRef`` and ``resourceFieldRef`` for one Pod, as the kubelet
computes them for environment variables and ``downwardAPI`` volume files."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal

import attrs

from kaito.apimachinery import parse_quantity
from kaito.cluster._json import Obj

__all__ = ("ContainerConfigError", "PodFacts", "format_map")

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The container cannot be configured (``CreateContainerConfigError``)."""


def format_map(values: Mapping[str, str]) -> str:
    """Labels or annotations as a downward-API file: ``key="value"`` lines, sorted by key."""
    return "\n".join(
        f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values)
    )


@attrs.frozen
class PodFacts:
    """What the downward API can tell about one Pod on one Node."""

    pod: Obj
    pod_ip: str
    host_ip: str
    node_allocatable: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def meta(self) -> Obj:
        return self.pod.get("metadata") or {}

    def field(self, path: str, *, in_volume: bool = False) -> str:
        """The value of ``fieldRef.fieldPath``.

        Raises:
            ContainerConfigError: for a path the downward API does not offer.
        """
        meta = self.meta
        spec = self.pod.get("spec") or {}
        simple = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", ""),
            "metadata.uid": meta.get("uid", ""),
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
        }
        if path in simple:
            return str(simple[path])
        if in_volume and path in ("metadata.labels", "metadata.annotations"):
            return format_map(meta.get(path.split(".")[1]) or {})
        match = _SUBSCRIPT.match(path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        raise ContainerConfigError(
            f'unsupported fieldPath: "{path}"; use metadata.name, metadata.namespace, '
            "metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, "
            "spec.serviceAccountName, status.hostIP(s) or status.podIP(s)"
        )

    def resource(self, ref: Obj, default_container: str | None) -> str:
        """The value of a ``resourceFieldRef`` (limits fall back to the node's allocatable).

        Raises:
            ContainerConfigError: for an unknown container or resource, or a bad divisor.
        """
        name = ref.get("containerName") or default_container
        spec = self.pod.get("spec") or {}
        container = next(
            (
                c
                for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                if c.get("name") == name
            ),
            None,
        )
        if container is None:
            raise ContainerConfigError(
                f'resourceFieldRef.containerName: "{name}" is not a container of this pod'
            )
        resource = str(ref.get("resource", ""))
        kind, _, what = resource.partition(".")
        if kind not in ("limits", "requests") or what not in ("cpu", "memory", "ephemeral-storage"):
            raise ContainerConfigError(
                f'resourceFieldRef.resource: "{resource}" is not supported; use limits.cpu, '
                "limits.memory, limits.ephemeral-storage or requests.* of the same"
            )
        resources = container.get("resources") or {}
        raw = (resources.get(kind) or {}).get(what)
        if raw is None and kind == "limits":
            raw = self.node_allocatable.get(what)
        if raw is None and kind == "requests":
            raw = (resources.get("limits") or {}).get(what)
        try:
            value = parse_quantity(raw) if raw is not None else Decimal(0)
            divisor = parse_quantity(ref.get("divisor") or "1")
        except ValueError as error:
            raise ContainerConfigError(f"resourceFieldRef: {error}") from error
        if divisor <= 0:
            raise ContainerConfigError(
                f'resourceFieldRef.divisor: "{ref.get("divisor")}" must be greater than zero'
            )
        return str(math.ceil(value / divisor))
