"""Where the AKS backend creates agent pools, and its timings; read from flags or environment.

Provisioner layer. No Azure SDK import here, so the manager can parse its options without the
``azure`` extra installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

import attrs

__all__ = ("AksSettings",)

#: Environment variables, as upstream's gpu-provisioner reads them (first match wins).
ENV_SUBSCRIPTION: Final = ("ARM_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID")
ENV_RESOURCE_GROUP: Final = ("ARM_RESOURCE_GROUP", "AZURE_RESOURCE_GROUP")
ENV_CLUSTER: Final = ("AZURE_CLUSTER_NAME",)
ENV_ARM_ENDPOINT: Final = ("ARM_ENDPOINT", "AZURE_RESOURCE_MANAGER_ENDPOINT")


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if env.get(name):
            return env[name]
    return ""


@attrs.frozen
class AksSettings:
    """The cluster the agent pools belong to, how to reach ARM, and how patient to be.

    ``arm_endpoint`` None means the public cloud's (``https://management.azure.com``);
    ``connection_verify`` is a CA bundle path (or ``True`` for the system's), for the ARM
    endpoint and the token endpoint alike. Times are seconds.
    """

    subscription_id: str
    resource_group: str
    cluster_name: str
    arm_endpoint: str | None = None
    connection_verify: str | bool = True
    #: The image family of Workspaces that name none (``--default-node-image-family``).
    default_node_image_family: str = "ubuntu"
    #: Seconds between LRO polls when ARM sends no ``Retry-After``.
    poll_interval: float = 10.0
    #: How long one ``ensure`` waits on a pool's create operation before reporting progress.
    lro_wait: float = 5.0
    #: Wait before retrying what needs a human (quota, SKU, credentials, roles).
    human_retry: float = 120.0
    #: Wait before recreating a pool that failed.
    failed_pool_retry: float = 30.0
    #: Wait before retrying while another operation holds the cluster.
    conflict_retry: float = 15.0
    #: Default wait on a 429 that carries no ``Retry-After``.
    throttle_retry: float = 10.0
    #: A succeeded pool whose Node has not joined within this long is replaced.
    join_timeout: float = 600.0
    #: How soon to look again while pools are being created (None: the controller's own poll).
    recheck: float | None = None
    #: Orphaned pools (their Workspace gone) younger than this are left alone by garbage collection.
    gc_grace: float = 600.0
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        cluster_name: str | None = None,
        arm_endpoint: str | None = None,
    ) -> AksSettings:
        """Flags first, then the environment (``ARM_SUBSCRIPTION_ID``, ``ARM_RESOURCE_GROUP``,
        ``AZURE_CLUSTER_NAME``, ``ARM_ENDPOINT``); raises ``ValueError`` naming what is missing."""
        settings = cls(
            subscription_id=subscription_id or _first(env, ENV_SUBSCRIPTION),
            resource_group=resource_group or _first(env, ENV_RESOURCE_GROUP),
            cluster_name=cluster_name or _first(env, ENV_CLUSTER),
            arm_endpoint=arm_endpoint or _first(env, ENV_ARM_ENDPOINT) or None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ``ValueError`` naming each missing setting, its flag and its variable."""
        missing = [
            f"{flag} (or {env[0]})"
            for value, flag, env in (
                (self.subscription_id, "--azure-subscription-id", ENV_SUBSCRIPTION),
                (self.resource_group, "--azure-resource-group", ENV_RESOURCE_GROUP),
                (self.cluster_name, "--azure-cluster-name", ENV_CLUSTER),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                "--node-provisioner=aks needs the AKS cluster the agent pools belong to: set "
                + ", ".join(missing)
            )
        if self.arm_endpoint is not None and not self.arm_endpoint.startswith("https://"):
            raise ValueError(
                f"--azure-resource-manager-endpoint={self.arm_endpoint!r}: ARM is only reached "
                "over https; use https://HOST[:PORT]"
            )
