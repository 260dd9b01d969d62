"""``kaito validate``: check Workspace YAML as the API server and its admission webhook would.

The documents are decoded by the API server's decoder and checked by ``check_workspace``, the
API server's pipeline followed by the webhook's rules; malformed input of any shape is reported,
never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs
import click

from kaito.api import NodeInfo, Stage, ValidationContext, check_workspace
from kaito.api.constants import KIND
from kaito.apimachinery import FieldError
from kaito.cli import main
from kaito.cli._documents import Document, DocumentError, read_documents
from kaito.controllers import ControllerSettings, validation_context

__all__ = ("validate",)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _context_from(docs: list[Document], **gates: Any) -> ValidationContext:
    config_maps: dict[tuple[str, str], dict[str, str]] = {}
    nodes: list[NodeInfo] = []
    for doc in docs:
        data = doc.data
        meta = data.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        if doc.kind == "ConfigMap" and isinstance(data.get("data") or {}, dict):
            key = (_text(meta.get("namespace")) or gates["namespace"], _text(meta.get("name")))
            config_maps[key] = {str(k): str(v) for k, v in (data.get("data") or {}).items()}
        elif doc.kind == "Node":
            labels = meta.get("labels")
            labels = labels if isinstance(labels, dict) else {}
            nodes.append(
                NodeInfo(_text(meta.get("name")), {str(k): str(v) for k, v in labels.items()})
            )
    settings = ControllerSettings(
        node_auto_provisioning=not gates["disable_node_auto_provisioning"],
        vllm_enabled=gates["vllm"],
        cloud=gates["cloud"],
        allow_local_urls=gates["allow_local_urls"],
    )
    # The manager's context under the same gates, with this input standing for the cluster.
    return attrs.evolve(
        validation_context(settings),
        config_maps=config_maps,
        nodes=tuple(nodes) if nodes else None,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _problem(p: FieldError, kind: str, stage: Stage | None = None) -> dict[str, Any]:
    problem = {"severity": kind, "field": p.field, "message": str(p)}
    if stage is not None:
        problem["stage"] = stage.value
    return problem


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "-n",
    "--namespace",
    default="default",
    show_default=True,
    help="Namespace of documents that name none.",
)
@click.option(
    "--disable-node-auto-provisioning",
    is_flag=True,
    help="Bring-your-own nodes: instanceType must be empty (feature gate).",
)
@click.option(
    "--vllm/--no-vllm",
    default=True,
    show_default=True,
    help="Whether the vLLM runtime is the default (feature gate vLLM).",
)
@click.option(
    "--cloud",
    type=click.Choice(["azure", "aws", "arc"]),
    default="azure",
    show_default=True,
    help="Cloud whose GPU SKUs are accepted.",
)
@click.option(
    "--allow-local-urls",
    is_flag=True,
    help="Accept loopback and private data URLs (local development only).",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def validate(files: tuple[str, ...], output: str, **gates: Any) -> None:
    """Validate Workspaces in FILES (YAML, several documents each; '-' reads stdin).

    ConfigMaps and Nodes in the same input stand for the cluster's; the default parameter
    templates are built in. Prints every problem of every document; exits 0 only when all
    Workspaces are valid.
    """
    try:
        report, invalid = _validate(files, **gates)
    except Exception as exc:  # the last resort: a one-line error, never a traceback
        click.echo(f"error: kaito validate failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    _print(report, output)
    sys.exit(1 if invalid else 0)


def _validate(files: tuple[str, ...], **gates: Any) -> tuple[list[dict[str, Any]], bool]:
    read = list(read_documents(list(files)))
    docs = [d for d in read if isinstance(d, Document)]
    failures = [d for d in read if isinstance(d, DocumentError)]
    ctx = _context_from([d for d in docs if isinstance(d.data, dict)], **gates)
    report: list[dict[str, Any]] = []
    invalid = bool(failures)
    for failure in failures:
        report.append(
            {
                "document": failure.source,
                "valid": False,
                "problems": [{"severity": "error", "field": "", "message": failure.message}],
            }
        )
    checked = 0
    for doc in docs:
        if not isinstance(doc.data, dict):
            invalid = True
            report.append(
                {
                    "document": doc.where,
                    "valid": False,
                    "problems": [
                        {
                            "severity": "error",
                            "field": "",
                            "message": "expected a mapping (a Kubernetes object)",
                        }
                    ],
                }
            )
            continue
        if doc.kind != KIND:
            continue
        checked += 1
        data = dict(doc.data)
        meta = data.get("metadata")
        if isinstance(meta, dict) and not meta.get("namespace"):
            data["metadata"] = {**meta, "namespace": gates["namespace"]}
        result = check_workspace(data, ctx, duplicates=doc.duplicates)
        invalid |= not result.ok
        report.append(
            {
                "document": doc.where,
                "name": doc.name,
                "valid": result.ok,
                "refusedAt": result.refused_at.value if result.refused_at else None,
                "problems": [
                    _problem(p, "error", stage)
                    for p, stage in zip(result.errors, result.stages, strict=True)
                ]
                + [_problem(p, "warning") for p in result.warnings],
            }
        )
    if checked == 0 and not failures:
        invalid = True
        report.append(
            {
                "document": ", ".join(files),
                "valid": False,
                "problems": [
                    {"severity": "error", "field": "", "message": "no Workspace documents found"}
                ],
            }
        )
    return report, invalid


def _print(report: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    for entry in report:
        errors = [p for p in entry["problems"] if p["severity"] == "error"]
        warnings = [p for p in entry["problems"] if p["severity"] == "warning"]
        name = f" Workspace/{entry['name']}" if entry.get("name") else ""
        verdict = "valid" if entry["valid"] else f"invalid ({_count(len(errors), 'error')})"
        if warnings:
            verdict += f", {_count(len(warnings), 'warning')}"
        click.echo(f"{entry['document']}{name}: {verdict}")
        for p in errors:
            click.echo(f"  error: {p['message']}")
        for p in warnings:
            click.echo(f"  warning: {p['message']}")
