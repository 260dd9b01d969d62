"""A complete operator on ``kaito.engine``: Widgets (``widgets.example.com``) each get a ConfigMap.

The worked example of ``examples/engine/README.md``. One level-triggered reconcile per Widget:
read it from the cache, render the ConfigMap it owns, create or patch it, write the status, tell
the story in Events. An invalid size is a terminal error (reported, not retried); deleting a
Widget deletes its ConfigMap through the owner reference. Run it against any cluster::

    python examples/engine/widget_operator.py --print-crd | kubectl apply -f -
    python examples/engine/widget_operator.py --kubeconfig ~/.kube/config

(The manifests live here, printed on demand, because ``examples/*/*.yaml`` are the guide's
Workspaces, applied all at once by ``kaito up --apply examples/``.)
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from kaito.engine import (
    ApiError,
    KubeClient,
    LeaderElectionConfig,
    Manager,
    ObjectKey,
    Resource,
    Result,
    TerminalError,
    load_client,
    map_to_controller_owner,
)

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SIZES = {"small": "1", "large": "4"}

#: The Widget CRD (``--print-crd``): install it before the operator starts.
CRD = """\
# The Widget kind the example operator reconciles.
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      additionalPrinterColumns:
        - {name: Size, type: string, jsonPath: .spec.size}
        - {name: Phase, type: string, jsonPath: .status.phase}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: string, description: "small or large"}
                message: {type: string, description: "What the widget's ConfigMap says."}
            status:
              type: object
              properties:
                phase: {type: string}
                observedGeneration: {type: integer, format: int64}
                message: {type: string}
"""

#: One Widget (``--print-widget``).
WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: hello
spec:
  size: small
  message: hello from a widget
"""


def desired_config_map(widget: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap a Widget owns (a pure function: easy to test without a cluster)."""
    meta = widget["metadata"]
    spec = widget.get("spec") or {}
    size = spec.get("size")
    if size not in SIZES:
        raise TerminalError(
            f"spec.size={size!r} is not supported; use one of: {', '.join(sorted(SIZES))}"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{meta['name']}-widget",
            "namespace": meta["namespace"],
            "labels": {"example.com/widget": meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"message": str(spec.get("message", "")), "replicas": SIZES[size]},
    }


def build_manager(
    client: KubeClient,
    *,
    namespace: str = "widgets-system",
    leader_elect: bool = True,
    probe_address: tuple[str, int] | None = ("0.0.0.0", 8081),
    metrics_address: tuple[str, int] | None = ("0.0.0.0", 8080),
) -> Manager:
    """The operator: a Manager with the widget controller (not started)."""
    manager = Manager(
        client,
        name="widget-operator",
        leader_election=LeaderElectionConfig("widget-operator", namespace)
        if leader_elect
        else None,
        probe_address=probe_address,
        metrics_address=metrics_address,
    )
    widgets = manager.informer(WIDGETS)
    config_maps = manager.informer(CONFIG_MAPS, label_selector="example.com/widget")
    events = manager.event_recorder()

    async def reconcile(key: ObjectKey) -> Result:
        widget = widgets.store.get(key)
        if widget is None:
            return Result()  # deleted: the owner reference deletes the ConfigMap
        generation = widget["metadata"].get("generation")
        try:
            wanted = desired_config_map(widget)
        except TerminalError as err:
            await client.patch_status(
                WIDGETS, key,
                {"phase": "Failed", "message": str(err), "observedGeneration": generation},
            )  # fmt: skip
            await events.event(widget, "InvalidSpec", str(err), type="Warning")
            raise
        cm_key = ObjectKey(key.namespace, wanted["metadata"]["name"])
        current = config_maps.store.get(cm_key)
        if current is None:
            try:
                await client.create(CONFIG_MAPS, wanted)
                await events.event(widget, "ConfigMapCreated", f"created configmap {cm_key.name}")
            except ApiError as err:
                if err.status != 409:  # already there: the cache is behind; patch below
                    raise
                current = await client.get(CONFIG_MAPS, cm_key)
        if current is not None and current.get("data") != wanted["data"]:
            await client.patch(CONFIG_MAPS, cm_key, {"data": wanted["data"]})
            await events.event(widget, "ConfigMapUpdated", f"updated configmap {cm_key.name}")
        status = {"phase": "Ready", "message": "", "observedGeneration": generation}
        if (widget.get("status") or {}) != status:
            await client.patch_status(WIDGETS, key, status)
        return Result()

    controller = manager.add_controller("widget", reconcile, workers=2, reconcile_timeout=60)
    controller.watch(widgets)
    controller.watch(config_maps, map_to_controller_owner("Widget", "example.com"))
    return manager


def _address(text: str) -> tuple[str, int] | None:
    if text in ("", "0"):
        return None
    host, _, port = text.rpartition(":")
    return (host or "0.0.0.0", int(port))


async def main(argv: list[str] | None = None) -> None:
    """Parse flags, connect, and run until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG")
    parser.add_argument("--namespace", default="widgets-system", help="for the Lease")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--health-probe-bind-address", default=":8081")
    parser.add_argument("--metrics-bind-address", default=":8080")
    parser.add_argument("--print-crd", action="store_true", help="print the Widget CRD and exit")
    parser.add_argument("--print-widget", action="store_true", help="print a Widget and exit")
    args = parser.parse_args(argv)
    if args.print_crd or args.print_widget:
        print(CRD if args.print_crd else WIDGET, end="")
        return
    client = await load_client(args.kubeconfig)
    try:
        manager = build_manager(
            client,
            namespace=args.namespace,
            leader_elect=args.leader_elect,
            probe_address=_address(args.health_probe_bind_address),
            metrics_address=_address(args.metrics_bind_address),
        )
        await manager.run_until_signalled()
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()


if __name__ == "__main__":
    anyio.run(main)
