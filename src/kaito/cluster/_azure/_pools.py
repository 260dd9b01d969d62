"""Agent pools and long-running operations as the AKS resource provider keeps them, and the
validation of an agent pool PUT body."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal

import attrs

__all__ = (
    "AgentPool",
    "ArmError",
    "Operation",
    "PoolState",
    "stamp",
    "validate_pool_body",
)

PoolState = Literal["Creating", "Updating", "Succeeded", "Failed", "Deleting"]
IN_PROGRESS: Final = frozenset({"Creating", "Updating", "Deleting"})
_POOL_NAME: Final = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_TAINT: Final = re.compile(
    r"^(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)=(?P<value>[-A-Za-z0-9_.]*):"
    r"(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)$"
)
_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_OS_SKUS: Final = ("Ubuntu", "AzureLinux", "Ubuntu2204", "Ubuntu2404", "AzureLinux3")
NAMING_RULES: Final = "Please see https://aka.ms/aks-naming-rules for more details."


def stamp(moment: datetime | None = None) -> str:
    """An ARM timestamp (RFC 3339 with fractional seconds)."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class ArmError(Exception):
    """An ARM error response: HTTP status and the ``{"error": {"code", "message"}}`` body."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _invalid(field: str, why: str = "") -> ArmError:
    detail = f" {why}" if why else ""
    return ArmError(
        400,
        "InvalidParameter",
        f"The value of parameter agentPoolProfile.{field} is invalid.{detail} {NAMING_RULES}",
    )


def validate_pool_body(name: str, body: Any) -> dict[str, Any]:
    """The ``properties`` of a valid agent pool PUT, normalised; raises :class:`ArmError`."""
    if not _POOL_NAME.match(name):
        raise _invalid(
            "name",
            "Agent pool names must start with a lowercase letter, have max "
            "length of 12, and only have characters a-z0-9.",
        )
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could "
            "not be deserialized: 'properties' must be an object.",
        )
    props = dict(body["properties"])
    vm_size = props.get("vmSize")
    if not isinstance(vm_size, str) or not vm_size:
        raise _invalid("vmSize", "vmSize is required.")
    count = props.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 1000:
        raise _invalid("count", "count must be between 0 and 1000.")
    props["count"] = count
    os_type = props.setdefault("osType", "Linux")
    if os_type not in ("Linux", "Windows"):
        raise _invalid("osType")
    os_sku = props.setdefault("osSKU", "Ubuntu")
    if os_sku not in _OS_SKUS:
        raise _invalid("osSKU", f"Supported values are {', '.join(_OS_SKUS)}.")
    disk = props.get("osDiskSizeGB")
    if disk is not None and (not isinstance(disk, int) or not 30 <= disk <= 2048):
        raise _invalid("osDiskSizeGB", "osDiskSizeGB must be between 30 and 2048.")
    for taint in props.get("nodeTaints") or ():
        if not isinstance(taint, str) or not _TAINT.match(taint):
            raise _invalid("nodeTaints", f"Taint {taint!r} is not key=value:Effect.")
    labels = props.get("nodeLabels") or {}
    if not isinstance(labels, dict):
        raise _invalid("nodeLabels")
    for key, value in labels.items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise _invalid("nodeLabels", f"Label {key}={value!r} has an invalid value.")
    props.setdefault("type", "VirtualMachineScaleSets")
    props.setdefault("mode", "User")
    for read_only in ("provisioningState", "status", "eTag", "currentOrchestratorVersion"):
        props.pop(read_only, None)
    return props


def parse_taint(text: str) -> dict[str, str]:
    """``key=value:Effect`` -> a Node taint."""
    match = _TAINT.match(text)
    assert match is not None
    return {"key": match["key"], "value": match["value"], "effect": match["effect"]}


@attrs.define
class AgentPool:
    """One agent pool: its properties as PUT, its state, its failure and its Node."""

    name: str
    properties: dict[str, Any]
    state: PoolState = "Creating"
    error: dict[str, str] | None = None
    node_name: str | None = None
    etag: str = attrs.field(factory=lambda: str(uuid.uuid4()))

    @property
    def instance_type(self) -> str:
        return str(self.properties.get("vmSize", ""))

    @property
    def workspace(self) -> str:
        return str((self.properties.get("nodeLabels") or {}).get("kaito.sh/workspace", ""))

    @property
    def busy(self) -> bool:
        return self.state in IN_PROGRESS

    def body(self, resource_id: str) -> dict[str, Any]:
        props = {
            **self.properties,
            "provisioningState": self.state,
            "powerState": {"code": "Running"},
            "orchestratorVersion": "1.32.4",
            "currentOrchestratorVersion": "1.32.4",
            "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202511.01.0",
            "eTag": self.etag,
        }
        if self.error is not None:
            props["status"] = {"provisioningError": dict(self.error)}
        return {
            "id": resource_id,
            "name": self.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": props,
        }


@attrs.define
class Operation:
    """A long-running operation, as its ``Azure-AsyncOperation`` URL reports it."""

    pool: str
    kind: Literal["create", "update", "delete"]
    id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
    status: Literal["InProgress", "Succeeded", "Failed", "Canceled"] = "InProgress"
    started: str = attrs.field(factory=stamp)
    ended: str | None = None
    error: dict[str, str] | None = None

    @property
    def done(self) -> bool:
        return self.status != "InProgress"

    def finish(self, error: dict[str, str] | None = None) -> None:
        self.status = "Failed" if error else "Succeeded"
        self.error = error
        self.ended = stamp()

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.id, "status": self.status, "startTime": self.started}
        if self.ended:
            out["endTime"] = self.ended
        if self.error:
            out["error"] = dict(self.error)
        return out
