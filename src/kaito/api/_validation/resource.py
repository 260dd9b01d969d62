"""Validation of ``resource``: node selection, instance type, partitions, and GPU fit.

API layer (pure functions).
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from kaito.api import constants as c
from kaito.api._config_files import ConfigFileError, load_config_file
from kaito.api._errors import (
    FieldError,
    forbidden,
    invalid,
    not_supported,
    required,
    warning,
)
from kaito.api._meta import LabelSelector
from kaito.api._validation.common import selector_as_map
from kaito.api._validation.context import (
    GPU_COUNT_LABEL,
    GPU_MEMORY_LABEL,
    GPU_PRODUCT_LABEL,
    INFERENCE_TEMPLATE,
    ValidationContext,
    config_map_ref,
)
from kaito.api.v1alpha1 import DEFAULT_INSTANCE_TYPE
from kaito.api.v1beta1 import ResourceSpec, Workspace
from kaito.apimachinery import dns1123_subdomain_problems, label_key_problems, label_value_problems
from kaito.catalog import SKU, Preset, check_fit

__all__ = ("configured_max_model_len", "validate_fit", "validate_resource")

_AZURE_PREFIXES: Final = ("Standard_N", "Standard_D")


def validate_resource(ws: Workspace, ctx: ValidationContext) -> list[FieldError]:
    r = ws.resource
    if r is None:
        return [
            required(
                "resource",
                "the GPU nodes to run on must be described",
                fix="add resource.instanceType and resource.labelSelector",
            )
        ]
    errors: list[FieldError] = []
    errors += _validate_selector(r.label_selector)
    if ctx.node_auto_provisioning:
        if not r.instance_type:
            errors.append(
                required(
                    "resource.instanceType",
                    "instanceType is required when node auto-provisioning is enabled",
                    fix=f"set a GPU SKU such as {_example_skus(ctx)}",
                )
            )
        else:
            errors += _validate_sku(r.instance_type, ctx)
        if r.partition is not None:
            errors.append(
                forbidden(
                    "resource.partition",
                    "GPU partitioning is only supported with bring-your-own nodes",
                    fix="remove partition, or disable node auto-provisioning",
                )
            )
    else:
        if r.instance_type:
            errors.append(
                invalid(
                    "resource.instanceType",
                    r.instance_type,
                    "instanceType must be empty when node auto-provisioning is disabled "
                    "(bring-your-own nodes)",
                    fix="remove instanceType; nodes are chosen by labelSelector"
                    + (
                        " (kaito.sh/v1alpha1 defaults it to this SKU: use kaito.sh/v1beta1 "
                        "for bring-your-own nodes)"
                        if r.instance_type == DEFAULT_INSTANCE_TYPE
                        else ""
                    ),
                )
            )
        if r.partition is not None:
            errors += _validate_partition(r, ctx)
    for i, node in enumerate(r.preferred_nodes or ()):
        problems = dns1123_subdomain_problems(node)
        if problems:
            errors.append(invalid(f"resource.preferredNodes[{i}]", node, "; ".join(problems)))
    return errors


def _example_skus(ctx: ValidationContext) -> str:
    return ", ".join(ctx.skus.names(ctx.cloud)[:3])


def _validate_selector(selector: LabelSelector | None) -> list[FieldError]:
    path = "resource.labelSelector"
    if selector is None:
        return [
            required(
                path,
                "the labels of the GPU nodes must be given",
                fix="add matchLabels, e.g. {apps: my-model}",
            )
        ]
    errors: list[FieldError] = []
    for key, value in (selector.match_labels or {}).items():
        for p in label_key_problems(key):
            errors.append(invalid(f"{path}.matchLabels", key, f"key {p}"))
        for p in label_value_problems(value):
            errors.append(invalid(f"{path}.matchLabels[{key}]", value, p))
    for i, req in enumerate(selector.match_expressions or ()):
        if req.operator != "In" or len(req.values or ()) != 1:
            errors.append(
                invalid(
                    f"{path}.matchExpressions[{i}]",
                    {"key": req.key, "operator": req.operator, "values": list(req.values or ())},
                    "only matchLabels or 'In' expressions with exactly one value are supported",
                    fix="write it as matchLabels: {key: value}",
                )
            )
    as_map = selector_as_map(selector)
    if not errors and not as_map:
        errors.append(
            required(
                f"{path}.matchLabels",
                "at least one label is needed, or the selector matches every node",
                fix="add a label such as apps: my-model",
            )
        )
    elif as_map and all(k in c.RESERVED_SELECTOR_LABELS for k in as_map):
        errors.append(
            invalid(
                f"{path}.matchLabels",
                sorted(as_map),
                "matchLabels must contain at least one non-reserved label "
                "(KAITO sets and ignores " + ", ".join(sorted(as_map)) + ")",
                fix="add a label of your own, e.g. apps: my-model",
            )
        )
    return errors


def _validate_sku(instance_type: str, ctx: ValidationContext) -> list[FieldError]:
    if ctx.skus.get(instance_type) is not None:
        return []
    if ctx.cloud == "azure" and instance_type.startswith(_AZURE_PREFIXES):
        return [
            warning(
                "resource.instanceType",
                "not in the GPU catalog, so its GPU memory cannot be checked",
                value=instance_type,
            )
        ]
    return [
        not_supported(
            "resource.instanceType",
            instance_type,
            ctx.skus.names(ctx.cloud),
            fix="pick a GPU SKU of your cloud from the list",
        )
    ]


def _validate_partition(r: ResourceSpec, ctx: ValidationContext) -> list[FieldError]:
    p = r.partition
    assert p is not None
    path = "resource.partition"
    if p.mode == "mig":
        errors = []
        if not ctx.enable_mig:
            errors.append(
                forbidden(path, "MIG support is not enabled", fix="set feature gate enableMIG=true")
            )
        if p.count is not None:
            errors.append(
                invalid(f"{path}.count", p.count, "count is only valid in accelerator mode")
            )
        if not p.profile or not re.match(r"^[1-9]g\.[0-9]+gb$", p.profile):
            errors.append(
                invalid(f"{path}.profile", p.profile or "", "not a MIG profile", fix="e.g. 1g.10gb")
            )
        return errors
    if p.mode == "accelerator":
        errors = []
        if not ctx.enable_accelerator:
            errors.append(
                forbidden(
                    path,
                    "accelerator partition support is not enabled",
                    fix="set feature gate enableAccelerator=true",
                )
            )
        if p.profile:
            errors.append(invalid(f"{path}.profile", p.profile, "not valid in accelerator mode"))
        if p.count is None:
            errors.append(required(f"{path}.count", "the number of GPUs is required"))
        return errors
    return []  # any other mode is refused by the schema (enum mig, accelerator)


def _gpu_config_of_nodes(
    ws: Workspace, ctx: ValidationContext
) -> tuple[SKU | None, int, list[FieldError]]:
    """Bring-your-own nodes: the uniform GPU configuration of the matching nodes."""
    assert ws.resource is not None
    if ctx.nodes is None:
        return (
            None,
            0,
            [
                warning(
                    "resource.labelSelector",
                    "the cluster's nodes are unknown here, so bring-your-own GPU memory "
                    "is not checked",
                )
            ],
        )
    wanted = {
        k: v
        for k, v in (selector_as_map(ws.resource.label_selector) or {}).items()
        if k not in c.RESERVED_SELECTOR_LABELS
    }
    nodes = [n for n in ctx.nodes if all(n.labels.get(k) == v for k, v in wanted.items())]
    path = "resource.labelSelector"
    if not nodes:
        return (
            None,
            0,
            [
                invalid(
                    path,
                    wanted,
                    "no nodes found matching the label selector",
                    fix="label your GPU nodes: kubectl label node NODE key=value",
                )
            ],
        )
    configs = set()
    for node in nodes:
        try:
            count = int(node.labels[GPU_COUNT_LABEL])
            mem_mib = int(node.labels[GPU_MEMORY_LABEL])
            product = node.labels[GPU_PRODUCT_LABEL]
        except (KeyError, ValueError):
            return (
                None,
                0,
                [
                    invalid(
                        path,
                        node.name,
                        f"node {node.name} lacks the NVIDIA GPU labels {GPU_PRODUCT_LABEL}, "
                        f"{GPU_COUNT_LABEL} and {GPU_MEMORY_LABEL}",
                        fix="install the NVIDIA GPU feature discovery, or label the node by hand",
                    )
                ],
            )
        configs.add((product, count, mem_mib))
    if len(configs) > 1:
        return (
            None,
            0,
            [
                invalid(
                    path,
                    sorted(n.name for n in nodes),
                    "the matching nodes have different GPUs; placement needs uniform nodes: "
                    + "; ".join(f"{p} x{n} ({m}MiB)" for p, n, m in sorted(configs)),
                )
            ],
        )
    product, count, mem_mib = configs.pop()
    sku = SKU(product, "byo", count, count * mem_mib / 1024, product)
    return sku, len(nodes), []


def validate_fit(
    ws: Workspace, preset: Preset | None, runtime: str, namespace: str, ctx: ValidationContext
) -> list[FieldError]:
    if preset is None or ws.resource is None:
        return []
    r = ws.resource
    bypass = c.ANNOTATION_BYPASS_RESOURCE_CHECKS in (ws.metadata.annotations or {})
    if ctx.node_auto_provisioning:
        sku = ctx.skus.get(r.instance_type or "")
        count = r.count or 1
        extra: list[FieldError] = []
    else:
        if r.partition is not None:
            return []
        sku, count, extra = _gpu_config_of_nodes(ws, ctx)
    if sku is None:
        return extra
    use_vllm = runtime == c.RuntimeName.VLLM and ctx.node_auto_provisioning
    max_len = configured_max_model_len(ws, namespace, ctx)
    fit = check_fit(
        preset,
        sku,
        count,
        runtime="vllm" if use_vllm else "transformers",
        max_model_len=max_len or 2048,
    )
    if fit.ok:
        return extra
    error = invalid(
        "resource.instanceType" if ctx.node_auto_provisioning else "resource.labelSelector",
        r.instance_type if ctx.node_auto_provisioning else sku.name,
        fit.reason,
        fix=_fit_fix(preset, ctx)
        + f"; annotation {c.ANNOTATION_BYPASS_RESOURCE_CHECKS} downgrades this to a warning",
    )
    if bypass:
        error = attrs.evolve(error, warning=True, fix=None)
    return [*extra, error]


def _fit_fix(preset: Preset, ctx: ValidationContext) -> str:
    bigger = [
        s.name
        for s in ctx.skus
        if s.cloud == ctx.cloud and s.nvidia and check_fit(preset, s, 1, runtime="transformers")
    ]
    if bigger:
        return "use a larger instance type such as " + ", ".join(bigger[:3])
    return "use more nodes or a larger instance type"


def configured_max_model_len(ws: Workspace, namespace: str, ctx: ValidationContext) -> int | None:

    inference = ws.inference
    if inference is None:
        return None
    ns, name = config_map_ref(namespace, inference.config, default=INFERENCE_TEMPLATE, ctx=ctx)
    data = ctx.config_map(ns, name) or {}
    try:
        config = load_config_file(data.get(c.INFERENCE_CONFIG_KEY, "") or "") or {}
        return int(str(config.get("vllm", {}).get("max-model-len")).strip())
    except (ConfigFileError, AttributeError, TypeError, ValueError):
        return None
