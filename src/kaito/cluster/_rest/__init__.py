"""The REST layer: Kubernetes verb semantics over a :class:`~kaito.cluster.Storage`, independent of
HTTP (the HTTP app, the in-process client and the simulated controllers all call it)."""

from __future__ import annotations

from kaito.cluster._meta import TimeSource
from kaito.cluster._resource_types import Catalog
from kaito.cluster._rest._reads import INITIAL_EVENTS_END, ReadsMixin, WatchItem, WatchStream
from kaito.cluster._rest._subresources import SubresourcesMixin
from kaito.cluster._rest._types import (
    Admission,
    AdmissionAttributes,
    DeleteOptions,
    DeleteOutcome,
    ListOptions,
    ListResult,
    NoAdmission,
    RequestContext,
    WatchOptions,
    WriteOptions,
)
from kaito.cluster._rest._writes import PATCH_TYPES
from kaito.cluster._store import Storage

__all__ = (
    "INITIAL_EVENTS_END",
    "PATCH_TYPES",
    "Admission",
    "AdmissionAttributes",
    "DeleteOptions",
    "DeleteOutcome",
    "ListOptions",
    "ListResult",
    "NoAdmission",
    "RequestContext",
    "RestApi",
    "WatchItem",
    "WatchOptions",
    "WatchStream",
    "WriteOptions",
)


class RestApi(ReadsMixin, SubresourcesMixin):
    """Every verb on every served resource; raises ``StatusError`` as kube-apiserver words it."""

    def __init__(
        self, store: Storage, catalog: Catalog, admission: Admission, clock: TimeSource
    ) -> None:
        super().__init__(store, catalog, admission, clock)
        self._init_reads()
