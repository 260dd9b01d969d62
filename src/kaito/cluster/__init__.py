"""The in-process Kubernetes cluster: API server, storage, built-in controllers, scheduler and
kubelets, for `kaito up`, local development and integration tests.

Optional components attach to a running cluster: the AKS emulator (``azure_emulator``: ARM agent
pools and an Entra tenant over TLS, for the real Azure SDK) and the simulated Karpenter
(``karpenter_simulator``: NodeClaims become GPU Nodes). ``kubectl`` and ``kubernetes-asyncio``
talk to it unchanged::

    async with start_cluster() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        await cluster.install_crds("deploy/crds")

See ``docs/testing-cluster.md`` for the full guide.
"""

import contextlib as _contextlib

from kaito.cluster._audit import AuditEvent, AuditLog
from kaito.cluster._azure import AzureEmulator, AzureTimes, BootTimes, azure_emulator
from kaito.cluster._client import LocalClient
from kaito.cluster._cluster import Cluster, ThreadedCluster, cluster_in_thread, start_cluster
from kaito.cluster._controllers import Controllers
from kaito.cluster._errors import StatusError
from kaito.cluster._faults import FaultRule, Faults, RequestInfo
from kaito.cluster._karpenter import KarpenterSimulator, KarpenterTimes, karpenter_simulator
from kaito.cluster._kubelet import (
    Attachment,
    ExecSession,
    ImageProfile,
    ImageTable,
    LocalKubelet,
    LogOptions,
)
from kaito.cluster._network import ClusterNetwork, ServiceAddress
from kaito.cluster._sim import ImmediateKubelet, Kubelet, PodStatusWriter
from kaito.cluster._store import (
    GroupResource,
    MemoryStorage,
    ObjectIndex,
    Snapshot,
    SqliteStorage,
    Storage,
    StorageBackup,
    StorageEvent,
    StorageWatch,
    StoredObject,
)

__all__ = (
    "Attachment",
    "AuditEvent",
    "AuditLog",
    "AzureEmulator",
    "AzureTimes",
    "BootTimes",
    "Cluster",
    "ClusterNetwork",
    "Controllers",
    "ExecSession",
    "FaultRule",
    "Faults",
    "GroupResource",
    "ImageProfile",
    "ImageTable",
    "ImmediateKubelet",
    "KarpenterSimulator",
    "KarpenterTimes",
    "Kubelet",
    "LocalClient",
    "LocalKubelet",
    "LogOptions",
    "MemoryStorage",
    "ObjectIndex",
    "PodStatusWriter",
    "RequestInfo",
    "ServiceAddress",
    "Snapshot",
    "SqliteStorage",
    "StatusError",
    "Storage",
    "StorageBackup",
    "StorageEvent",
    "StorageWatch",
    "StoredObject",
    "ThreadedCluster",
    "azure_emulator",
    "cluster_in_thread",
    "karpenter_simulator",
    "start_cluster",
)

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("kaito.cluster."):
        with _contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
