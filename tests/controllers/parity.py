"""Rendering every path of ``upstream_fields.yaml`` and comparing it with upstream's fields.

Field paths are dotted keys with list selectors: ``spec.template.spec.containers[0].env[name=HF_HOME]``;
a key with dots or slashes is quoted: ``metadata.annotations["workspace.kaito.io/revision"]``.
``python -m tests.controllers.parity --write`` regenerates the tables of docs/upstream-parity.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import yaml

from kaito.api import check_workspace, default_template
from kaito.api import constants as c
from kaito.api._validation import ValidationContext, runtime_of
from kaito.api.v1beta1 import Workspace
from kaito.catalog import SKU, preset_catalog, sku_catalog
from kaito.controllers import (
    ControllerSettings,
    InferencePlan,
    TuningPlan,
    controller_revision,
    inference_config_map,
    inference_services,
    inference_statefulset,
    merge_inference_config,
    spec_hash,
    target_node_count,
    template_statefulset,
    training_config_map,
    tuning_job,
    validation_context,
)

ROOT = Path(__file__).resolve().parents[2]
TABLE = Path(__file__).with_name("upstream_fields.yaml")
DOC = ROOT / "docs" / "upstream-parity.md"
ABSENT: Final = "<absent>"
HASH: Final = "<hash>"
HASH_ANNOTATION: Final = "workspace.kaito.io/hash"
MISSING: Final = object()
_TOKEN = re.compile(r'\.?([A-Za-z0-9_-]+)|\["([^"]+)"\]|\[(\d+)\]|\[(\w+)=([^\]]+)\]')

Step = str | int | tuple[str, str]


def parse_path(path: str) -> list[Step]:
    """``a.b["c.d"][0][name=x]`` as steps: keys, indices, ``(field, value)`` selectors."""
    steps: list[Step] = []
    at = 0
    while at < len(path):
        m = _TOKEN.match(path, at)
        if m is None or m.end() == at:
            raise ValueError(f"bad field path {path!r} at {path[at:]!r}")
        key, quoted, index, field, value = m.groups()
        if key is not None:
            steps.append(key)
        elif quoted is not None:
            steps.append(quoted)
        elif index is not None:
            steps.append(int(index))
        else:
            steps.append((field, value))
        at = m.end()
    return steps


def get(obj: Any, steps: list[Step]) -> Any:
    """The value at ``steps``, or :data:`MISSING`."""
    for step in steps:
        if isinstance(step, tuple):
            if not isinstance(obj, list):
                return MISSING
            field, value = step
            found = [o for o in obj if isinstance(o, Mapping) and str(o.get(field)) == value]
            if len(found) != 1:
                return MISSING
            obj = found[0]
        elif isinstance(step, int):
            if not isinstance(obj, list) or step >= len(obj):
                return MISSING
            obj = obj[step]
        else:
            if not isinstance(obj, Mapping) or step not in obj:
                return MISSING
            obj = obj[step]
    return obj


def leaves(obj: Any, prefix: tuple[Step, ...] = ()) -> Iterator[tuple[Step, ...]]:
    """Every leaf path of ``obj`` (list items of dicts with a ``name`` are selected by it)."""
    if isinstance(obj, Mapping) and obj:
        for key, value in obj.items():
            yield from leaves(value, (*prefix, str(key)))
    elif isinstance(obj, list) and obj:
        named = all(isinstance(o, Mapping) and "name" in o for o in obj)
        for i, item in enumerate(obj):
            step: Step = ("name", str(item["name"])) if named else i
            yield from leaves(item, (*prefix, step))
    else:
        yield prefix


def covered(leaf: tuple[Step, ...], paths: list[list[Step]]) -> bool:
    return any(len(p) <= len(leaf) and tuple(p) == leaf[: len(p)] for p in paths)


def show(steps: tuple[Step, ...] | list[Step]) -> str:
    out = ""
    for step in steps:
        if isinstance(step, tuple):
            out += f"[{step[0]}={step[1]}]"
        elif isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", step):
            out += f".{step}" if out else step
        else:
            out += f'["{step}"]'
    return out


def load_table() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TABLE.read_text())
    return data


# -- rendering a path ------------------------------------------------------------------------


@attrs.frozen
class Rendered:
    workspace: Workspace
    objects: dict[str, dict[str, Any]]


def _workspace(doc: Mapping[str, Any], ctx: ValidationContext) -> Workspace:
    result = check_workspace(dict(doc), ctx)
    assert result.workspace is not None, result.errors
    assert result.ok, [str(e) for e in result.errors]
    return result.workspace


def _sku(path: Mapping[str, Any], ws: Workspace) -> SKU | None:
    gpus = path.get("byoNodeGPUs")
    if gpus is not None:  # bring-your-own nodes: the GPUs their labels advertise
        return SKU(gpus["product"], "byo", gpus["count"], gpus["count"] * gpus["memoryMiB"] / 1024,
                   gpus["product"])  # fmt: skip
    return sku_catalog().get(ws.resource.instance_type or "") if ws.resource else None


def render(path: Mapping[str, Any]) -> Rendered:
    """Every object the controller renders for the path's Workspace (revision 1)."""
    settings = ControllerSettings(**(path.get("settings") or {}))
    doc = dict(path["workspace"])
    doc["metadata"] = {"namespace": "default", "uid": "uid-1", "generation": 1, **doc["metadata"]}
    ctx = validation_context(settings)
    ws = _workspace(doc, ctx)
    runtime = runtime_of(ws, ctx)
    section = ws.inference or ws.tuning
    assert section is not None
    preset_spec = section.preset
    preset = preset_catalog().get(preset_spec.name) if preset_spec else None
    sku = _sku(path, ws)
    nodes = target_node_count(
        ws, preset, sku, runtime=runtime, node_auto_provisioning=settings.node_auto_provisioning
    )
    objects: list[dict[str, Any]] = []
    if ws.inference is not None:
        objects += inference_services(ws, settings)
        if ws.inference.template is not None:
            objects.append(
                template_statefulset(ws, replicas=nodes, revision="1", settings=settings)
            )
        else:
            default = default_template(c.DEFAULT_INFERENCE_CONFIG_TEMPLATE) or {}
            assert preset is not None
            plan = InferencePlan(
                preset=preset,
                model_id=preset.model_id,
                sku=sku,
                node_count=nodes,
                runtime=runtime,
                config_text=merge_inference_config(default[c.INFERENCE_CONFIG_KEY], None),
                revision="1",
            )
            objects += [inference_config_map(ws, plan), inference_statefulset(ws, plan, settings)]
    else:
        assert ws.tuning is not None and preset is not None
        template = default_template(f"{ws.tuning.method}-params-template") or {}
        plan_t = TuningPlan(preset=preset, sku=sku, config_text=template[c.TUNING_CONFIG_KEY],
                            revision="1")  # fmt: skip
        objects += [training_config_map(ws, plan_t), tuning_job(ws, plan_t, settings)]
    hash_ = spec_hash(ws)
    revision = controller_revision(ws, hash_, 1)
    # Upstream's naming, <workspace>-<first 5 hex of the hash>; the hash itself is ours (the
    # table compares "<hash>", its encoding being a deliberate difference).
    assert revision["metadata"]["name"] == f"{ws.metadata.name}-{hash_[:5]}"
    assert revision["metadata"]["annotations"] == {HASH_ANNOTATION: hash_}
    revision["metadata"]["name"] = f"{ws.metadata.name}-{HASH}"
    revision["metadata"]["annotations"] = {HASH_ANNOTATION: HASH}
    objects.append(revision)
    rendered = {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}
    # The Workspace's own annotations, as the revision sync writes them.
    rendered[f"Workspace/{ws.metadata.name}"] = {
        "metadata": {"annotations": {HASH_ANNOTATION: HASH, c.ANNOTATION_REVISION: "1"}}
    }
    return Rendered(ws, rendered)


# -- the doc's tables --------------------------------------------------------------------------

START = "<!-- parity:start (generated by python -m tests.controllers.parity --write) -->"
END = "<!-- parity:end -->"


def _cell(value: Any) -> str:
    if value is MISSING or value == ABSENT:
        return "(absent)"
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("...").strip()
    if len(text) > 90:
        text = text[:87] + "..."
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def entries(fields: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(field path, spec)`` of an object's fields; keys ending in ``/`` group a common prefix."""
    for key, spec in fields.items():
        if key.endswith("/"):
            yield from entries(spec, _join(prefix, key[:-1]))
        else:
            yield _join(prefix, key), spec


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def deliberate(spec: Any) -> bool:
    return isinstance(spec, Mapping) and "deliberate" in spec


def doc_tables(table: Mapping[str, Any]) -> str:
    """The generated part of docs/upstream-parity.md: per path the count of fields compared, then
    every deliberate difference with the paths it applies to."""
    lines = ["| path | Workspace | fields and flags equal to upstream's | deliberate differences |",
             "|---|---|---|---|"]  # fmt: skip
    rows: dict[tuple[str, str, str, str], list[str]] = {}

    def note(field: str, spec: Mapping[str, Any], name: str) -> None:
        ours = _cell(spec["ours"]) if "ours" in spec else ""
        key = (field, spec["deliberate"], _cell(spec.get("upstream", ABSENT)), ours)
        paths = rows.setdefault(key, [])
        if name not in paths:
            paths.append(name)

    for name, path in table["paths"].items():
        same = differ = 0
        for kind_name, fields in path["objects"].items():
            kind = kind_name.split("/")[0]
            listed = [("(the object)", fields)] if deliberate(fields) else entries(fields)
            for field, spec in listed:
                if deliberate(spec):
                    differ += 1
                    note(f"{kind} `{field}`", spec, name)
                else:
                    same += 1
        for flag, spec in (path.get("flags") or {}).items():
            if deliberate(spec):
                differ += 1
                note(f"command `--{flag}`", spec, name)
            else:
                same += 1
        lines.append(f"| `{name}` | {path['description']} | {same} | {differ} |")
    lines += ["", "| field | upstream | ours | why | paths |", "|---|---|---|---|---|"]
    for (field, why, upstream, ours), paths in sorted(rows.items()):
        shown = "all" if len(paths) == len(table["paths"]) else ", ".join(f"`{p}`" for p in paths)
        lines.append(f"| {field} | {upstream} | {ours} | [{why}](#{why}) | {shown} |")
    return "\n".join(lines)


def write_doc() -> None:
    text = DOC.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{START}\n{doc_tables(load_table())}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_doc()
    else:
        for name, path in load_table()["paths"].items():
            print(f"# {name}")
            for key, obj in render(path).objects.items():
                for leaf in leaves(obj):
                    print(f"{key} {show(leaf)} = {get(obj, list(leaf))!r}")
