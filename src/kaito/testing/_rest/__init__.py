"""The REST layer: Kubernetes verb semantics over a :class:`~kaito.testing.Store`, independent of
HTTP (the HTTP app, the in-process client and the simulated controllers all call it)."""

from __future__ import annotations

from kaito.testing._meta import Clock
from kaito.testing._resources import Catalog
from kaito.testing._rest._reads import INITIAL_EVENTS_END, ReadsMixin, WatchItem, WatchStream
from kaito.testing._rest._subresources import SubresourcesMixin
from kaito.testing._rest._types import (
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
from kaito.testing._rest._writes import PATCH_TYPES
from kaito.testing._store import Store

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
    """Every verb on every served resource; raises ``ApiError`` with kube-apiserver's statuses."""

    def __init__(self, store: Store, catalog: Catalog, admission: Admission, clock: Clock) -> None:
        super().__init__(store, catalog, admission, clock)
        self._init_reads()
