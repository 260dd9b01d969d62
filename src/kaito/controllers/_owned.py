"""The one table of what a Workspace owns: each object's kind and how its name derives.

Controller layer (pure data), as controller-runtime's ``Owns()``: the renderers name objects
from it, the finalizer deletes what it lists, and the watch set-up builds one informer per kind
it lists, mapped back to the owning Workspace through the controller ownerReference.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

from kaito.controllers._resources import CONFIG_MAPS, JOBS, SERVICES, STATEFUL_SETS
from kaito.engine import ObjectKey, Resource

__all__ = (
    "HEADLESS_SERVICE",
    "INFERENCE_PARAMS",
    "INFERENCE_SERVICE",
    "INFERENCE_SET",
    "OWNED_KINDS",
    "OWNED_OBJECTS",
    "TRAINING_PARAMS",
    "TUNING_JOB",
    "OwnedKind",
    "OwnedObject",
)

Mode = Literal["inference", "tuning"]


@attrs.frozen
class OwnedObject:
    """One object a Workspace owns: its kind, the mode that has it, and its name's suffix."""

    resource: Resource
    mode: Mode
    #: Appended to the Workspace's name (``""``: the object is named after the Workspace).
    suffix: str = ""

    def name(self, workspace: str) -> str:
        """The object's name for the Workspace called ``workspace``."""
        return f"{workspace}{self.suffix}"

    def key(self, namespace: str, workspace: str) -> ObjectKey:
        """The object's key for the Workspace ``namespace/workspace``."""
        return ObjectKey(namespace, self.name(workspace))


INFERENCE_SET: Final = OwnedObject(STATEFUL_SETS, "inference")
TUNING_JOB: Final = OwnedObject(JOBS, "tuning")
INFERENCE_SERVICE: Final = OwnedObject(SERVICES, "inference")
HEADLESS_SERVICE: Final = OwnedObject(SERVICES, "inference", "-headless")
INFERENCE_PARAMS: Final = OwnedObject(CONFIG_MAPS, "inference", "-inference-params")
TRAINING_PARAMS: Final = OwnedObject(CONFIG_MAPS, "tuning", "-training-params")

#: Every object a Workspace may own, workloads first (the order the finalizer deletes them in).
OWNED_OBJECTS: Final = (
    INFERENCE_SET,
    TUNING_JOB,
    INFERENCE_SERVICE,
    HEADLESS_SERVICE,
    INFERENCE_PARAMS,
    TRAINING_PARAMS,
)


@attrs.frozen
class OwnedKind:
    """A kind the controller owns objects of, and how widely its informer must look."""

    resource: Resource
    #: Whether the informer may see only objects with the Workspace label. False for kinds the
    #: controller also reads when it does not own them (the ConfigMaps a ``config`` names).
    labelled_only: bool


_READ_UNOWNED: Final = frozenset({CONFIG_MAPS})

#: The kinds of :data:`OWNED_OBJECTS`, each once, in the table's order.
OWNED_KINDS: Final = tuple(
    OwnedKind(resource, resource not in _READ_UNOWNED)
    for resource in dict.fromkeys(obj.resource for obj in OWNED_OBJECTS)
)
