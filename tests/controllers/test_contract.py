"""The operator<->pod contract: every command the controller renders parses with the runtime's own
argument parser, means what the Workspace says, and reads paths the pod really mounts.

A flag renamed on either side, a module moved, or a mount path changed on one side only fails
here. The contract module itself imports only the standard library and attrs.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from kaito.api import check_workspace, default_template
from kaito.api.constants import RuntimeName
from kaito.api.v1beta1 import Workspace
from kaito.catalog import preset_catalog, sku_catalog
from kaito.controllers import (
    ControllerSettings,
    InferencePlan,
    TuningPlan,
    inference_config_map,
    inference_statefulset,
    merge_inference_config,
    training_config_map,
    tuning_job,
)
from kaito_runtime import contract
from kaito_runtime.adapters._cli import build_parser as adapters_parser
from kaito_runtime.data._cli import build_parser as data_parser
from kaito_runtime.inference._cli import build_parser as inference_parser
from kaito_runtime.launch._cli import build_parser as launch_parser
from kaito_runtime.tuning import build_parser as tuning_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SRC = Path(__file__).resolve().parents[2] / "src"
SETTINGS = ControllerSettings(runtime_image="kaito-runtime:test")
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    contract.INFERENCE_MODULE: inference_parser,
    contract.TUNING_MODULE: tuning_parser,
    contract.DATA_MODULE: data_parser,
    contract.ADAPTERS_MODULE: adapters_parser,
    contract.LAUNCH_MODULE: launch_parser,
}
JSON = dict[str, Any]


def _doc(rel: str) -> JSON:
    doc: JSON = yaml.safe_load((EXAMPLES / rel).read_text())
    doc["metadata"].update(namespace="default", uid="uid-1", generation=1)
    return doc


def _workspace(doc: JSON) -> Workspace:
    result = check_workspace(doc)
    assert result.ok, result.errors
    assert result.workspace is not None
    return result.workspace


def parse(command: list[str]) -> argparse.Namespace:
    """Parse ``python -m MODULE ARGS`` with MODULE's own parser (its module must exist).

    For the launcher, what follows ``--`` (the launched command or the tuning arguments) is
    left unparsed in ``rest``, as the launcher splits it off itself.
    """
    assert command[:2] == [contract.PYTHON, "-m"], command
    module = command[2]
    assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    args, rest = command[3:], []
    if module == contract.LAUNCH_MODULE and contract.LaunchFlags.SEPARATOR in args:
        at = args.index(contract.LaunchFlags.SEPARATOR)
        args, rest = args[:at], args[at + 1 :]
    try:
        parsed = PARSERS[module]().parse_args(args)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"{module} refuses {shlex.join(command)}") from exc
    parsed.rest = rest
    return parsed


def parse_tuning(rest: list[str]) -> argparse.Namespace:
    """The tuning arguments the launcher hands to every ``kaito_runtime.tuning`` process."""
    try:
        return tuning_parser().parse_args(rest)
    except SystemExit as exc:
        raise AssertionError(f"kaito_runtime.tuning refuses {shlex.join(rest)}") from exc


def mounts(container: JSON) -> list[PurePosixPath]:
    return [PurePosixPath(m["mountPath"]) for m in container.get("volumeMounts") or ()]


def assert_mounted(container: JSON, path: str | Path) -> None:
    """``path`` lies in (or is) a volume the container mounts."""
    where = PurePosixPath(str(path))
    assert any(where == m or m in where.parents for m in mounts(container)), (
        f"{where} is not under a mount of container {container['name']}: {mounts(container)}"
    )


# -- inference -------------------------------------------------------------------------------


def inference_variants() -> list[Any]:
    plain = _doc("inference/kaito_workspace_phi_3.yaml")
    adapters = _doc("inference/kaito_workspace_phi_3_with_adapters.yaml")
    mixed = copy.deepcopy(adapters)
    mixed["inference"]["adapters"] = [
        {"source": {"name": "from-image", "image": "registry.example/a:1",
                    "imagePullSecrets": ["pull-secret", "other-secret"]}, "strength": "0.5"},
        {"source": {"name": "from-volume",
                    "volumeSource": {"persistentVolumeClaim": {"claimName": "adapters"}}}},
    ]  # fmt: skip
    gated = copy.deepcopy(plain)
    gated["inference"]["preset"] = {
        "name": "llama-3.3-70b-instruct",
        "presetOptions": {"modelAccessSecret": "hf-token"},
    }
    gated["resource"]["instanceType"] = "Standard_NC24ads_A100_v4"  # three nodes with vLLM
    return [
        *(
            pytest.param(doc, runtime, 1, id=f"{name}-{runtime}")
            for name, doc in (("plain", plain), ("image-adapter", adapters), ("mixed", mixed))
            for runtime in (RuntimeName.VLLM, RuntimeName.TRANSFORMERS)
        ),
        pytest.param(gated, RuntimeName.VLLM, 3, id="multi-node-vllm"),
    ]


def inference_plan(ws: Workspace, runtime: str, nodes: int = 1) -> InferencePlan:
    assert ws.inference and ws.inference.preset and ws.resource
    preset = preset_catalog().get(ws.inference.preset.name)
    default = default_template("inference-params-template")
    assert preset and default
    return InferencePlan(
        preset=preset,
        model_id=preset.model_id,
        sku=sku_catalog().get(ws.resource.instance_type or ""),
        node_count=nodes,
        runtime=runtime,
        config_text=merge_inference_config(default[contract.INFERENCE_CONFIG_FILE], None),
        revision="1",
    )


def server_of(command: list[str]) -> tuple[argparse.Namespace, argparse.Namespace | None]:
    """The server's parsed flags, and the launcher's when the server runs under it."""
    parsed = parse(command)
    if command[2] != contract.LAUNCH_MODULE:
        return parsed, None
    assert parsed.command == contract.LaunchFlags.RAY
    return parse(parsed.rest), parsed


@pytest.mark.parametrize(("doc", "runtime", "nodes"), inference_variants())
def test_the_inference_command_parses_with_the_servers_parser(
    doc: JSON, runtime: str, nodes: int
) -> None:
    ws = _workspace(doc)
    plan = inference_plan(ws, runtime, nodes)
    sts = inference_statefulset(ws, plan, SETTINGS)
    pod = sts["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    args, launch = server_of(server["command"])
    assert args.model == plan.model_id
    assert args.served_model_name == plan.model_id.rsplit("/", 1)[-1].lower()
    assert args.backend == runtime
    assert args.port == SETTINGS.server_port
    assert {"containerPort": args.port} | server["ports"][0] == server["ports"][0]
    env = {e["name"]: e for e in server["env"]}
    if runtime == RuntimeName.VLLM:
        assert 0 < args.gpu_memory_utilization <= 1
        assert args.tensor_parallel_size >= 1
        assert args.max_model_len == "auto"
    if launch is None:
        assert nodes == 1
        assert server["readinessProbe"]["httpGet"] == {
            "path": contract.HEALTH_PATH,
            "port": args.port,
        }
    else:
        # Several nodes: the Ray launcher on every pod, the server after "--" on the leader.
        assert (launch.nodes, launch.ray_port) == (nodes, contract.RAY_PORT)
        assert launch.leader_address == (
            f"{ws.metadata.name}-0.{ws.metadata.name}-headless.default.svc.cluster.local"
        )
        assert (args.pipeline_parallel_size, args.distributed_executor_backend) == (nodes, "ray")
        assert env[contract.POD_INDEX_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == (
            f"metadata.labels['{contract.POD_INDEX_LABEL}']"
        )
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            health = parse(server[probe]["exec"]["command"])
            assert health.command == contract.LaunchFlags.HEALTH
            assert health.leader_address == launch.leader_address
            assert health.server_port == args.port
        assert parse(server["livenessProbe"]["exec"]["command"]).nodes == nodes
        assert sts["spec"]["replicas"] == nodes
    # The parameters file is the ConfigMap's key, mounted where the flag points.
    assert args.kaito_config_file == contract.INFERENCE_CONFIG_PATH
    assert_mounted(server, args.kaito_config_file)
    config_map = inference_config_map(ws, plan)
    volume = next(v for v in pod["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert PurePosixPath(args.kaito_config_file).name in config_map["data"]
    assert_mounted(server, env[contract.HF_HOME_ENV]["value"])
    access = ws.inference.preset.preset_options  # type: ignore[union-attr]
    if access and access.model_access_secret:
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == access.model_access_secret
    # Each adapter: pulled by an init container into the directory the server reads, or
    # mounted there from its volume; its strength (when given) in the env var named after it.
    adapters = {a.source.name: a for a in ws.inference.adapters or ()}  # type: ignore[union-attr]
    pullers = {i["name"]: i for i in pod.get("initContainers") or ()}
    secrets = [s["name"] for s in pod.get("imagePullSecrets") or ()]
    for name, adapter in adapters.items():
        target = PurePosixPath(args.adapters_dir) / name
        if adapter.strength is None:
            assert name not in env
        else:
            assert env[name]["value"] == adapter.strength
        assert_mounted(server, target)
        if adapter.source.image:
            init = pullers.pop(f"puller-{name}")
            pulled = parse(init["command"])
            assert pulled.command == contract.AdapterFlags.PULL
            assert (pulled.image, PurePosixPath(pulled.dir)) == (adapter.source.image, target)
            assert_mounted(init, pulled.dir)
            if adapter.source.image_pull_secrets:
                assert_mounted(init, pulled.docker_config)
                assert set(adapter.source.image_pull_secrets) <= set(secrets)
    assert pullers == {}


# -- tuning ----------------------------------------------------------------------------------

INPUTS: dict[str, JSON] = {
    "urls": {"urls": ["https://example.com/data/train.parquet"]},
    "image": {"image": "registry.example/data:1"},
    "private-image": {"image": "registry.example/data:1", "imagePullSecrets": ["pull-secret"]},
    "volume": {"volumeSource": {"persistentVolumeClaim": {"claimName": "dataset"}}},
}
OUTPUTS: dict[str, JSON] = {
    "image": {"image": "registry.example/adapter:1", "imagePushSecret": "push-secret"},
    "volume": {"volumeSource": {"persistentVolumeClaim": {"claimName": "results"}}},
}


def split_shell(command: list[str]) -> list[list[str]]:
    """The commands of a container: its argv, or each ``&&`` step of an ``sh -c`` line."""
    if command[:2] != ["sh", "-c"]:
        return [command]
    steps: list[list[str]] = [[]]
    for word in shlex.split(command[2]):
        if word == "&&":
            steps.append([])
        else:
            steps[-1].append(word)
    return steps


@pytest.mark.parametrize("allow_local", [False, True], ids=["public-urls", "local-urls"])
@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("source", sorted(INPUTS))
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_the_tuning_commands_parse_with_the_runtimes_parsers(
    method: str, source: str, output: str, allow_local: bool
) -> None:
    doc = _doc("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    doc["tuning"].update(method=method, input=INPUTS[source], output=OUTPUTS[output])
    ws = _workspace(doc)
    assert ws.tuning is not None
    preset = preset_catalog().get(ws.tuning.preset.name)
    template = default_template(f"{method}-params-template")
    assert preset and template
    plan = TuningPlan(
        preset=preset,
        sku=sku_catalog().get("Standard_NC6s_v3"),
        config_text=template[contract.TUNING_CONFIG_FILE],
        revision="1",
    )
    settings = ControllerSettings(runtime_image="kaito-runtime:test", allow_local_urls=allow_local)
    job = tuning_job(ws, plan, settings)
    pod = job["spec"]["template"]["spec"]
    (tuning,) = pod["containers"]
    assert tuning["name"] == ws.metadata.name
    steps = split_shell(tuning["command"])
    launch = parse(steps[0])
    assert launch.command == contract.LaunchFlags.TUNING
    assert launch.processes_per_node == "1"  # Standard_NC6s_v3: one GPU, one process
    train = parse_tuning(launch.rest)
    assert (train.model, train.preset, train.method) == (preset.model_id, preset.name, method)
    assert train.config == Path(contract.TUNING_CONFIG_PATH)
    assert PurePosixPath(contract.TUNING_CONFIG_PATH).name in training_config_map(ws, plan)["data"]
    for path in (train.config, train.data_dir, train.output_dir):
        assert_mounted(tuning, path)
    assert train.metrics_port == contract.SERVER_PORT == tuning["ports"][0]["containerPort"]
    if output == "volume":
        assert train.checkpoint_dir is not None
        assert_mounted(tuning, train.checkpoint_dir)
        assert len(steps) == 1
    else:
        push = parse(steps[1])
        assert push.command == contract.AdapterFlags.PUSH
        assert (Path(push.dir), push.image) == (train.output_dir, OUTPUTS[output]["image"])
        assert push.model_name == preset.name
        assert_mounted(tuning, push.docker_config)
        assert pod["imagePullSecrets"] == [{"name": OUTPUTS[output]["imagePushSecret"]}]
    # The input: fetched into the data directory by an init container, or mounted as is.
    inits = pod.get("initContainers") or []
    volumes = {v["name"]: v for v in pod["volumes"]}
    if source == "volume":
        assert inits == []
        assert volumes["data-volume"]["persistentVolumeClaim"] == {"claimName": "dataset"}
        return
    (init,) = inits
    assert init["name"] == ("data-downloader" if source == "urls" else "puller")
    fetch = parse(init["command"])
    assert fetch.command == contract.DataFlags.FETCH
    assert fetch.dest == train.data_dir
    assert_mounted(init, fetch.dest)
    assert fetch.url == (INPUTS[source]["urls"] if source == "urls" else None)
    assert fetch.image == INPUTS[source].get("image")
    assert fetch.allow_local == (allow_local and source == "urls")
    if source == "private-image":
        assert_mounted(init, fetch.docker_config)
    else:
        assert fetch.docker_config is None


@pytest.mark.parametrize(("instance_type", "gpus"), [("Standard_NC12s_v3", 2),
                                                     ("Standard_NC96ads_A100_v4", 4)])  # fmt: skip
def test_tuning_runs_one_process_per_gpu(instance_type: str, gpus: int) -> None:
    """As upstream's ``accelerate launch --num_processes=<GPUs of the SKU>``."""
    doc = _doc("fine-tuning/kaito_workspace_tuning_phi_3.yaml")
    doc["resource"]["instanceType"] = instance_type
    ws = _workspace(doc)
    preset = preset_catalog().get("phi-3-mini-128k-instruct")
    template = default_template("qlora-params-template")
    assert preset and template
    sku = sku_catalog().get(instance_type)
    plan = TuningPlan(preset=preset, sku=sku, config_text=template[contract.TUNING_CONFIG_FILE],
                      revision="1")  # fmt: skip
    (tuning,) = tuning_job(ws, plan, SETTINGS)["spec"]["template"]["spec"]["containers"]
    launch = parse(split_shell(tuning["command"])[0])
    assert launch.processes_per_node == str(gpus)
    assert parse_tuning(launch.rest).preset == "phi-3-mini-128k-instruct"
    assert tuning["resources"]["limits"] == {"nvidia.com/gpu": str(gpus)}


# -- the contract itself ---------------------------------------------------------------------


def test_the_runtimes_defaults_are_the_contracts() -> None:
    """Run by hand without flags, the programs read the paths the controller mounts."""
    tuning = tuning_parser().parse_args([])
    assert tuning.metrics_port == contract.SERVER_PORT
    from kaito_runtime.tuning import _cli as tuning_cli
    from kaito_runtime.tuning._config import LORA_TEMPLATE, QLORA_TEMPLATE

    assert (
        Path(contract.TUNING_CONFIG_PATH), Path(contract.DATA_DIR), Path(contract.RESULTS_DIR)
    ) == (tuning_cli.DEFAULT_CONFIG, tuning_cli.DEFAULT_DATA_DIR, tuning_cli.DEFAULT_OUTPUT_DIR)  # fmt: skip
    assert (LORA_TEMPLATE, QLORA_TEMPLATE) == (contract.LORA_PARAMS, contract.QLORA_PARAMS)
    served = inference_parser().parse_args([contract.InferenceFlags.MODEL, "m"])
    assert (served.port, served.adapters_dir) == (contract.SERVER_PORT, contract.ADAPTER_DIR)
    assert data_parser().parse_args([contract.DataFlags.FETCH]).dest is None  # $DATA_VOLUME_PATH
    # The operator installs the same default templates the runtime falls back to.
    assert default_template("lora-params-template") == {
        contract.TUNING_CONFIG_FILE: contract.LORA_PARAMS
    }
    assert default_template("inference-params-template") == {
        contract.INFERENCE_CONFIG_FILE: contract.INFERENCE_PARAMS
    }


def test_the_launchers_defaults_are_the_contracts() -> None:
    """The launcher's own defaults are the names the controller renders."""
    from kaito_runtime.launch._health import DEFAULT_SERVER_PORT
    from kaito_runtime.launch._pod import POD_INDEX_ENV
    from kaito_runtime.launch._ray_nodes import DEFAULT_RAY_PORT
    from kaito_runtime.launch._tuning import DEFAULT_MAIN_PORT

    assert POD_INDEX_ENV == contract.POD_INDEX_ENV
    assert DEFAULT_RAY_PORT == contract.RAY_PORT
    assert DEFAULT_MAIN_PORT == contract.RENDEZVOUS_PORT
    assert DEFAULT_SERVER_PORT == contract.SERVER_PORT


def test_the_progress_document_round_trips() -> None:
    from kaito_runtime.tuning._progress import ProgressTracker

    tracker = ProgressTracker(None)
    try:
        snapshot = tracker.update(phase="training", step=3, max_steps=10, loss=2.5)
    finally:
        tracker.close()
    doc = json.loads(json.dumps(snapshot.to_json()))
    assert contract.TuningProgress.from_json(doc) == snapshot
    assert set(doc) == {a.name for a in contract.TuningProgress.__attrs_attrs__}
    assert contract.TuningProgress.from_json({"phase": 3}) is None
    assert contract.TuningProgress.from_json({"phase": "training", "loss": "high"}) == (
        contract.TuningProgress(phase="training")
    )


def test_the_termination_message_goes_where_the_contract_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaito_runtime.adapters._termination import (
        DEFAULT_TERMINATION_LOG,
        write_termination_message,
    )

    assert str(DEFAULT_TERMINATION_LOG) == contract.TERMINATION_LOG
    monkeypatch.setenv(contract.TERMINATION_LOG_ENV, str(tmp_path / "log"))
    write_termination_message("x" * (2 * contract.TERMINATION_MESSAGE_MAX_BYTES))
    assert len((tmp_path / "log").read_bytes()) == contract.TERMINATION_MESSAGE_MAX_BYTES


def test_the_contract_imports_only_the_standard_library_and_attrs() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import kaito_runtime.contract\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    loaded = {name.split(".")[0] for name in proc.stdout.split()}
    allowed = set(sys.stdlib_module_names) | {"attr", "attrs", "kaito_runtime"}
    assert loaded - allowed == set()
    assert {n for n in proc.stdout.split() if n.startswith("kaito_runtime.")} == {
        "kaito_runtime.contract"
    }
