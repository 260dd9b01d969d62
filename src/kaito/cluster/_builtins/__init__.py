"""Built-in Kubernetes kinds: schemas, defaults, validation and table printers."""

from kaito.cluster._builtins._printers import PRINTERS, human_duration, parse_time
from kaito.cluster._builtins._schemas import KIND_SCHEMAS, OBJECT_META
from kaito.cluster._builtins._service_ips import (
    DEFAULT_SERVICE_CIDR,
    SERVICES,
    ServiceIPAllocator,
    service_cluster_ips,
)
from kaito.cluster._builtins._strategies import default_pod_spec, pod_qos_class
from kaito.cluster._builtins._types import builtin_types

__all__ = (
    "DEFAULT_SERVICE_CIDR",
    "KIND_SCHEMAS",
    "OBJECT_META",
    "PRINTERS",
    "SERVICES",
    "ServiceIPAllocator",
    "builtin_types",
    "default_pod_spec",
    "human_duration",
    "parse_time",
    "pod_qos_class",
    "service_cluster_ips",
)
