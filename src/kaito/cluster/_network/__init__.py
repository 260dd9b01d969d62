"""Cluster networking on this machine: Service endpoints, the user-space service proxy on every
cluster IP, and what Pods of the local kubelet know of Services (``/etc/hosts`` names, Service
variables). See ``docs/local-networking.md``."""

from kaito.cluster._network._endpoints import (
    ENDPOINT_SLICES,
    ENDPOINTS,
    SERVICE_NAME_LABEL,
    EndpointsController,
)
from kaito.cluster._network._names import CLUSTER_DOMAIN, ServiceDirectory, service_variables
from kaito.cluster._network._network import ClusterNetwork, PodNetworking
from kaito.cluster._network._proxy import Binder, ServiceAddress, ServiceProxy, bind_tcp, splice

__all__ = (
    "CLUSTER_DOMAIN",
    "ENDPOINTS",
    "ENDPOINT_SLICES",
    "SERVICE_NAME_LABEL",
    "Binder",
    "ClusterNetwork",
    "EndpointsController",
    "PodNetworking",
    "ServiceAddress",
    "ServiceDirectory",
    "ServiceProxy",
    "bind_tcp",
    "service_variables",
    "splice",
)
