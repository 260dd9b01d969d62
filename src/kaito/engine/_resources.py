"""Engine layer: which API resource a client call, informer or watch is about."""

from __future__ import annotations

from urllib.parse import quote

import attrs

from kaito.engine._keys import ObjectKey

__all__ = ("LEASES", "Resource")


@attrs.frozen
class Resource:
    """A group/version/resource with its kind, e.g. ``Resource("apps", "v1", "deployments",
    "Deployment")``. ``group`` is ``""`` for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """Return the ``apiVersion`` field value, e.g. ``apps/v1`` or ``v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """Return the URL path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def object_path(self, key: ObjectKey, subresource: str | None = None) -> str:
        """Return the URL path of the object ``key`` (and its subresource)."""
        return self.path(key.namespace or None, key.name, subresource)

    def __str__(self) -> str:
        return (
            f"{self.plural}.{self.version}.{self.group}"
            if self.group
            else (f"{self.plural}.{self.version}")
        )


#: ``coordination.k8s.io/v1`` Leases, used by leader election.
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
