"""The local kubelet: Pods bound to Nodes run as processes of this machine (see
``docs/local-kubelet.md``)."""

from kaito.cluster._kubelet._clock import KubeletClock, MonotonicTime
from kaito.cluster._kubelet._images import ImageError, ImageProfile, ImageTable
from kaito.cluster._kubelet._kubelet import (
    Attachment,
    ExecSession,
    LocalKubelet,
    ServiceEnvironment,
)
from kaito.cluster._kubelet._logs import LogOptions
from kaito.cluster._kubelet._network import DEFAULT_NODE_CIDR, DEFAULT_POD_CIDR, AddressPool
from kaito.cluster._kubelet._node import SYSTEM_NODE_LABELS, SYSTEM_NODE_NAME, host_capacity
from kaito.cluster._kubelet._volumes import TokenSource

__all__ = (
    "DEFAULT_NODE_CIDR",
    "DEFAULT_POD_CIDR",
    "SYSTEM_NODE_LABELS",
    "SYSTEM_NODE_NAME",
    "AddressPool",
    "Attachment",
    "ExecSession",
    "ImageError",
    "ImageProfile",
    "ImageTable",
    "KubeletClock",
    "LocalKubelet",
    "LogOptions",
    "MonotonicTime",
    "ServiceEnvironment",
    "TokenSource",
    "host_capacity",
)
