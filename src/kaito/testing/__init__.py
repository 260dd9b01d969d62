"""An in-process Kubernetes API server for tests, local development and CI.

``kubectl`` and ``kubernetes-asyncio`` talk to it unchanged::

    async with start_cluster() as cluster:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        await cluster.install_crds("deploy/crds")

See ``docs/testing-cluster.md`` for the full guide.
"""

import contextlib as _contextlib

from kaito.testing._client import LocalClient
from kaito.testing._cluster import Cluster, ThreadedCluster, cluster_in_thread, start_cluster
from kaito.testing._controllers import Controllers
from kaito.testing._errors import ApiError
from kaito.testing._faults import FaultRule, Faults, RequestInfo
from kaito.testing._sim import ImmediateKubelet, Kubelet, PodStatusWriter
from kaito.testing._store import (
    GroupResource,
    MemoryStore,
    ObjectIndex,
    Snapshot,
    Store,
    StoredObject,
    StoreEvent,
    StoreWatch,
)

__all__ = (
    "ApiError",
    "Cluster",
    "Controllers",
    "FaultRule",
    "Faults",
    "GroupResource",
    "ImmediateKubelet",
    "Kubelet",
    "LocalClient",
    "MemoryStore",
    "ObjectIndex",
    "PodStatusWriter",
    "RequestInfo",
    "Snapshot",
    "Store",
    "StoreEvent",
    "StoreWatch",
    "StoredObject",
    "ThreadedCluster",
    "cluster_in_thread",
    "start_cluster",
)

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("kaito.testing."):
        with _contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
