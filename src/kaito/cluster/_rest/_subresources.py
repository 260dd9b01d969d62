"""The ``scale`` and ``binding`` subresources."""

from __future__ import annotations

from typing import Any

from kaito.apimachinery import FieldError
from kaito.cluster._errors import bad_request, conflict, invalid
from kaito.cluster._json import Obj
from kaito.cluster._jsonpath import evaluate
from kaito.cluster._meta import format_time
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest._types import RequestContext, WriteOptions
from kaito.cluster._rest._writes import WritesMixin
from kaito.cluster._selectors import label_selector_from_object

__all__ = ("SubresourcesMixin",)


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    node = obj
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class SubresourcesMixin(WritesMixin):
    """Scale reads and writes replicas; binding assigns a Pod to a Node."""

    def scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        """The ``autoscaling/v1 Scale`` view of an object."""
        paths = rt.scale
        if paths is None:
            raise bad_request(f"{rt.plural} has no scale subresource")
        spec = evaluate(paths.spec_replicas, obj)
        status = evaluate(paths.status_replicas, obj)
        scale_status: Obj = {"replicas": int(status[0]) if status else 0}
        if paths.label_selector:
            found = evaluate(paths.label_selector, obj)
            if found:
                selector = found[0]
                if isinstance(selector, dict):
                    scale_status["selector"] = ",".join(
                        f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())
                    ) or str(label_selector_from_object(selector))
                else:
                    scale_status["selector"] = str(selector)
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": int(spec[0]) if spec else 0},
            "status": scale_status,
        }

    async def set_scale(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        scale: Obj,
        *,
        options: WriteOptions | None = None,
        ctx: RequestContext | None = None,
    ) -> Obj:
        """Write ``spec.replicas`` from a Scale object; returns the new Scale."""
        paths = rt.scale
        if paths is None:
            raise bad_request(f"{rt.plural} has no scale subresource")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "autoscaling",
                "Scale",
                name,
                [
                    FieldError(
                        "Invalid", "spec.replicas", replicas, "must be greater than or equal to 0"
                    )
                ],
            )
        wanted = str((scale.get("metadata") or {}).get("resourceVersion") or "")

        def mutate(current: Obj) -> Obj:
            if wanted and wanted != current["metadata"].get("resourceVersion"):
                raise conflict(
                    rt.group,
                    rt.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            _set_path(current, paths.spec_replicas, replicas)
            return current

        stored, _ = await self._update(
            rt,
            namespace,
            name,
            mutate,
            options=options or WriteOptions(),
            ctx=ctx or RequestContext(),
            subresource="",
            precondition=None,
        )
        return self.scale_of(rt, self.decode(rt, stored))

    async def bind(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        binding: Obj,
        ctx: RequestContext | None = None,
    ) -> None:
        """Assign a Pod to the Node named by ``binding.target.name`` (``pods/binding``)."""
        target = binding.get("target") or {}
        node = target.get("name")
        if not node:
            raise invalid("", "Binding", name, [FieldError("Required", "target.name")])

        def mutate(current: Obj) -> Obj:
            spec = current.setdefault("spec", {})
            if spec.get("nodeName"):
                raise conflict(
                    "",
                    "pods/binding",
                    name,
                    f"pod {name} is already assigned to node {spec['nodeName']!r}",
                )
            spec["nodeName"] = node
            status = current.setdefault("status", {})
            conditions = [
                c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
            ]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": format_time(self.clock()),
                }
            )
            status["conditions"] = conditions
            return current

        await self._update(
            rt,
            namespace,
            name,
            mutate,
            options=WriteOptions(),
            ctx=ctx or RequestContext(),
            subresource="binding",
            precondition=None,
        )
