"""A table of invalid Workspaces: each fails with the expected field path, value and fix."""

from __future__ import annotations

from typing import Any

import pytest

from kaito.api import NodeInfo, ValidationContext, check_workspace
from kaito.apimachinery import merge_patch

DELETE = None
"""A key's value in the documents' patches that removes it (they are JSON merge patches)."""


def inference_ws(**patch: Any) -> dict[str, Any]:
    doc = {
        "apiVersion": "kaito.sh/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "ws", "namespace": "default"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"apps": "phi-4"}},
        },
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }
    return dict(merge_patch(doc, patch))


def tuning_ws(**patch: Any) -> dict[str, Any]:
    doc = {
        "apiVersion": "kaito.sh/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": "tune", "namespace": "default"},
        "resource": {
            "instanceType": "Standard_NC24ads_A100_v4",
            "labelSelector": {"matchLabels": {"app": "tuning"}},
        },
        "tuning": {
            "preset": {"name": "phi-3-mini-128k-instruct"},
            "method": "qlora",
            "input": {"urls": ["https://example.com/data/train.parquet"]},
            "output": {"image": "myregistry.azurecr.io/adapter:0.0.1", "imagePushSecret": "push"},
        },
    }
    return dict(merge_patch(doc, patch))


def cm(name: str, key: str, text: str) -> dict[tuple[str, str], dict[str, str]]:
    return {("default", name): {key: text}}


QLORA_BOTH = (
    "training_config:\n  QuantizationConfig:\n    load_in_4bit: true\n    load_in_8bit: true\n"
)
LORA_QUANT = "training_config:\n  QuantizationConfig:\n    load_in_4bit: true\n"
BAD_SECTION = (
    "training_config:\n  Optimizer:\n    lr: 1\n  QuantizationConfig:\n    load_in_4bit: true\n"
)
BAD_OUTPUT = (
    "training_config:\n  QuantizationConfig:\n    load_in_4bit: true\n"
    "  TrainingArguments:\n    output_dir: ../etc\n"
)

# (id, document, expected field, expected text in the message, context overrides)
CASES: list[tuple[str, dict[str, Any], str, str, dict[str, Any]]] = [
    ("neither-inference-nor-tuning", inference_ws(inference=DELETE), "inference", "not neither", {}),
    ("both-inference-and-tuning", merge_patch(tuning_ws(), {"inference": {"preset": {"name": "phi-4"}}}),
     "tuning", "not both", {}),
    ("unknown-preset", inference_ws(inference={"preset": {"name": "phi-5"}}),
     "inference.preset.name", "phi-4-mini-instruct", {}),
    ("deprecated-preset", inference_ws(inference={"preset": {"name": "phi-2"}}),
     "inference.preset.name", "deprecated", {}),
    ("instance-too-small-transformers",
     inference_ws(metadata={"annotations": {"kaito.sh/runtime": "transformers"}},
                  resource={"instanceType": "Standard_NV36ads_A10_v5"},
                  inference={"preset": {"name": "phi-4"}}),
     "resource.instanceType", "insufficient total GPU memory", {}),
    ("transformers-cannot-span-nodes",
     inference_ws(metadata={"annotations": {"kaito.sh/runtime": "transformers"}},
                  resource={"count": 2, "instanceType": "Standard_NV36ads_A10_v5"},
                  inference={"preset": {"name": "phi-4"}}),
     "resource.instanceType", "the transformers runtime cannot span nodes", {}),
    ("vllm-context-leaves-no-room",
     inference_ws(resource={"instanceType": "Standard_NV6"},
                  inference={"preset": {"name": "phi-3-mini-128k-instruct"}, "config": "cfg"}),
     "resource.instanceType", "leaves no room",
     {"config_maps": cm("cfg", "inference_config.yaml", "vllm:\n  max-model-len: 131072\n")}),
    ("unsupported-instance-type", inference_ws(resource={"instanceType": "m5.large"}),
     "resource.instanceType", "Unsupported value", {}),
    ("missing-instance-type-with-nap", inference_ws(resource={"instanceType": ""}),
     "resource.instanceType", "required", {}),
    ("instance-type-with-byo", inference_ws(), "resource.instanceType", "must be empty",
     {"node_auto_provisioning": False, "nodes": ()}),
    ("strength-out-of-range",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"},
                                           "strength": "1.5"}]}),
     "inference.adapters[0].strength", "between 0 and 1", {}),
    ("strength-not-a-number",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"},
                                           "strength": "abc"}]}),
     "inference.adapters[0].strength", "decimal", {}),
    ("strength-negative",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"},
                                           "strength": "-0.1"}]}),
     "inference.adapters[0].strength", "decimal", {}),
    ("strength-wrong-type",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"},
                                           "strength": 0.5}]}),
     "inference.adapters[0].strength", 'must be of type string: "number"', {}),
    ("adapter-without-source", inference_ws(inference={"adapters": [{"strength": "0.5"}]}),
     "inference.adapters[0].source", "source", {}),
    ("adapter-with-urls",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "urls": ["https://x.io/a"]}}]}),
     "inference.adapters[0].source.urls", "not supported", {}),
    ("adapter-duplicate-names",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "r.io/a:1"}},
                                          {"source": {"name": "a", "image": "r.io/b:1"}}]}),
     "inference.adapters[1].source.name", "Duplicate", {}),
    ("adapter-name-not-dns",
     inference_ws(inference={"adapters": [{"source": {"name": "My_Adapter", "image": "r.io/a:1"}}]}),
     "inference.adapters[0].source.name", "RFC 1123", {}),
    ("too-many-adapters",
     inference_ws(inference={"adapters": [{"source": {"name": f"a{i}", "image": "r.io/a:1"}}
                                          for i in range(11)]}),
     "inference.adapters", "at most 10", {}),
    ("adapter-bad-image",
     inference_ws(inference={"adapters": [{"source": {"name": "a", "image": "R.io/Adapter:1"}}]}),
     "inference.adapters[0].source.image", "lowercase", {}),
    ("preset-and-template",
     inference_ws(inference={"template": {"spec": {"containers": []}}}),
     "inference.template", "same time", {}),
    ("preset-needs-hf-token", inference_ws(inference={"preset": {"name": "llama-3.1-8b-instruct"}}),
     "inference.preset.presetOptions.modelAccessSecret", "HuggingFace token", {}),
    ("transformers-cannot-run-preset",
     inference_ws(metadata={"annotations": {"kaito.sh/runtime": "transformers"}},
                  inference={"preset": {"name": "gpt-oss-20b"}}),
     "metadata.annotations[kaito.sh/runtime]", "cannot run", {}),
    ("bad-runtime-annotation",
     inference_ws(metadata={"annotations": {"kaito.sh/runtime": "tgi"}}),
     "metadata.annotations[kaito.sh/runtime]", "Unsupported value", {}),
    ("vllm-lora-unsupported",
     inference_ws(resource={"instanceType": "Standard_NC24ads_A100_v4"},
                  inference={"preset": {"name": "falcon-7b-instruct"},
                             "adapters": [{"source": {"name": "a", "image": "r.io/a:1"}}]}),
     "inference.adapters", "cannot apply LoRA", {}),
    ("inference-config-missing", inference_ws(inference={"config": "my-params"}),
     "inference.config", "not found", {"config_maps": {}}),
    ("inference-config-without-key", inference_ws(inference={"config": "my-params"}),
     "inference.config", "inference_config.yaml", {"config_maps": cm("my-params", "x.yaml", "a: 1")}),
    ("max-model-len-too-large", inference_ws(inference={"config": "my-params"}),
     "inference.config[vllm.max-model-len]", "context window",
     {"config_maps": cm("my-params", "inference_config.yaml", "vllm:\n  max-model-len: 999999\n")}),
    ("max-model-len-not-integer", inference_ws(inference={"config": "my-params"}),
     "inference.config[vllm.max-model-len]", "integer",
     {"config_maps": cm("my-params", "inference_config.yaml", "vllm:\n  max-model-len: lots\n")}),
    ("selector-missing", inference_ws(resource={"labelSelector": DELETE}),
     "resource.labelSelector", "Required", {}),
    ("selector-only-reserved-labels",
     inference_ws(resource={"labelSelector": {"matchLabels": {"apps": DELETE, "kaito.sh/workspace": "x"}}}),
     "resource.labelSelector.matchLabels", "non-reserved", {}),
    ("selector-notin-expression",
     inference_ws(resource={"labelSelector": {"matchLabels": DELETE, "matchExpressions": [
         {"key": "a", "operator": "NotIn", "values": ["b"]}]}}),
     "resource.labelSelector.matchExpressions[0]", "In", {}),
    ("count-zero", inference_ws(resource={"count": 0}), "resource.count",
     "should be greater than or equal to 1; use 1 or more nodes", {}),
    ("count-string", inference_ws(resource={"count": "2"}), "resource.count",
     'must be of type integer: "string"', {}),
    ("adapters-too-many",
     inference_ws(inference={"adapters": [{"source": {"name": f"a{i}", "image": "r.io/a:1"}}
                                          for i in range(11)]}),
     "inference.adapters", "Too many: 11: must have at most 10 items; merge or drop some", {}),
    ("access-mode-not-an-enum-value", inference_ws(inference={"preset": {"accessMode": "secret"}}),
     "inference.preset.accessMode", 'Unsupported value: "secret": supported values: "public", "private"', {}),
    ("partition-mode-not-an-enum-value",
     inference_ws(apiVersion="kaito.sh/v1beta1", resource={"partition": {"mode": "slices"}}),
     "resource.partition.mode", 'supported values: "mig", "accelerator"', {}),
    ("label-value-invalid", inference_ws(metadata={"labels": {"team": "a b"}}), "metadata.labels",
     "a valid label must be an empty string", {}),
    ("annotations-over-256-kib", inference_ws(metadata={"annotations": {"big": "x" * 262_142}}),
     "metadata.annotations", "Too long: may not be more than 262144 bytes", {}),
    ("name-not-dns", inference_ws(metadata={"name": "My_Workspace"}), "metadata.name", "RFC 1123", {}),
    ("unknown-field", inference_ws(resource={"instanceTyp": "x"}), "resource.instanceTyp",
     'did you mean "instanceType"', {}),
    ("unknown-root-field", inference_ws(spec={"resource": {}}), "spec", "Unknown field", {}),
    ("tuning-unknown-method", tuning_ws(tuning={"method": "dora"}), "tuning.method",
     'supported values: "lora", "qlora"', {}),
    ("tuning-method-missing", tuning_ws(tuning={"method": DELETE}), "tuning.method", "Required", {}),
    ("tuning-preset-not-tunable", tuning_ws(tuning={"preset": {"name": "mistral-7b-instruct"}}),
     "tuning.preset.name", "does not support tuning", {}),
    ("tuning-two-inputs",
     tuning_ws(tuning={"input": {"image": "r.io/data:1"}}), "tuning.input", "exactly one", {}),
    ("tuning-no-input", tuning_ws(tuning={"input": {"urls": DELETE}}), "tuning.input", "exactly one", {}),
    ("tuning-input-missing", tuning_ws(tuning={"input": DELETE}), "tuning.input", "Required", {}),
    ("tuning-url-scheme", tuning_ws(tuning={"input": {"urls": ["ftp://example.com/a"]}}),
     "tuning.input.urls[0]", "http or https", {}),
    ("tuning-url-loopback", tuning_ws(tuning={"input": {"urls": ["http://127.0.0.1/a"]}}),
     "tuning.input.urls[0]", "loopback", {}),
    ("tuning-url-private", tuning_ws(tuning={"input": {"urls": ["http://10.0.0.5/a"]}}),
     "tuning.input.urls[0]", "private", {}),
    ("tuning-url-metadata",
     tuning_ws(tuning={"input": {"urls": ["http://metadata.google.internal/x"]}}),
     "tuning.input.urls[0]", "metadata", {}),
    ("tuning-url-link-local", tuning_ws(tuning={"input": {"urls": ["http://169.254.169.254/x"]}}),
     "tuning.input.urls[0]", "link-local", {}),
    ("tuning-output-image-no-secret", tuning_ws(tuning={"output": {"imagePushSecret": DELETE}}),
     "tuning.output.imagePushSecret", "credentials", {}),
    ("tuning-output-both", tuning_ws(tuning={"output": {"volumeSource": {"emptyDir": {}}}}),
     "tuning.output", "exactly one", {}),
    ("tuning-count-two", tuning_ws(resource={"count": 2}), "resource.count", "multi-node", {}),
    ("tuning-config-both-quantizations", tuning_ws(tuning={"config": "tp"}),
     "tuning.config[training_config.QuantizationConfig]", "both",
     {"config_maps": cm("tp", "training_config.yaml", QLORA_BOTH)}),
    ("tuning-lora-quantized", tuning_ws(tuning={"method": "lora", "config": "tp"}),
     "tuning.config[training_config.QuantizationConfig]", "does not quantize",
     {"config_maps": cm("tp", "training_config.yaml", LORA_QUANT)}),
    ("tuning-qlora-not-quantized", tuning_ws(tuning={"config": "tp"}),
     "tuning.config[training_config.QuantizationConfig]", "needs load_in_4bit",
     {"config_maps": cm("tp", "training_config.yaml", "training_config:\n  LoraConfig: {}\n")}),
    ("tuning-unknown-section", tuning_ws(tuning={"config": "tp"}),
     "tuning.config[training_config.Optimizer]", "unrecognized section",
     {"config_maps": cm("tp", "training_config.yaml", BAD_SECTION)}),
    ("tuning-output-dir-escapes", tuning_ws(tuning={"config": "tp"}),
     "tuning.config[training_config.TrainingArguments.output_dir]", "under /mnt",
     {"config_maps": cm("tp", "training_config.yaml", BAD_OUTPUT)}),
    ("byo-no-matching-nodes",
     inference_ws(apiVersion="kaito.sh/v1beta1", resource={"instanceType": DELETE}),
     "resource.labelSelector", "no nodes found", {"node_auto_provisioning": False, "nodes": ()}),
    ("byo-nodes-too-small", inference_ws(apiVersion="kaito.sh/v1beta1",
                                         resource={"instanceType": DELETE},
                                         inference={"preset": {"name": "phi-4"}}),
     "resource.labelSelector", "insufficient total GPU memory",
     {"node_auto_provisioning": False, "nodes": (NodeInfo("n1", {
         "apps": "phi-4", "nvidia.com/gpu.product": "NVIDIA-A10", "nvidia.com/gpu.count": "1",
         "nvidia.com/gpu.memory": "24576"}),)}),
    ("wrong-api-version", inference_ws(apiVersion="kaito.sh/v2"), "apiVersion", "Unsupported", {}),
    ("wrong-kind", inference_ws(kind="Workload"), "kind", "expected kind", {}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "field", "text", "ctx"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_spec_is_rejected_at_its_field(
    doc: dict[str, Any], field: str, text: str, ctx: dict[str, Any]
) -> None:
    result = check_workspace(doc, ValidationContext(**ctx))
    assert not result.ok
    matching = [e for e in result.errors if e.field == field]
    assert matching, f"no error at {field}; got {[str(e) for e in result.errors]}"
    assert any(text in str(e) for e in matching), [str(e) for e in matching]
    assert all(str(e).startswith(f"{e.field}: ") for e in result.errors)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_problem_is_reported_not_just_the_first() -> None:
    doc = inference_ws(
        metadata={"name": "Bad_Name"},
        resource={"count": 0, "instanceType": "m5.large"},
        inference={
            "preset": {"name": "phi-5"},
            "adapters": [{"source": {"name": "a", "image": "r.io/a:1"}, "strength": "1.5"}],
        },
    )
    result = check_workspace(doc, ValidationContext())
    assert {e.field for e in result.errors} >= {
        "metadata.name",
        "resource.count",
        "resource.instanceType",
        "inference.preset.name",
        "inference.adapters[0].strength",
    }


def test_bypass_annotation_downgrades_the_fit_check_to_a_warning() -> None:
    doc = inference_ws(
        metadata={"annotations": {"kaito.sh/runtime": "transformers",
                                  "kaito.sh/bypass-resource-checks": "true"}},
        resource={"instanceType": "Standard_NV36ads_A10_v5"},
        inference={"preset": {"name": "phi-4"}},
    )  # fmt: skip
    result = check_workspace(doc, ValidationContext())
    assert result.ok
    assert [w.field for w in result.warnings] == ["resource.instanceType"]


@pytest.mark.parametrize(
    ("preset", "instance_type"),
    [("llama-3.3-70b-instruct", "Standard_NC24ads_A100_v4"),
     ("phi-4", "Standard_NV36ads_A10_v5")],
)  # fmt: skip
def test_vllm_models_that_need_several_nodes_are_admitted(preset: str, instance_type: str) -> None:
    """As upstream v0.12: every vLLM model may span nodes (pipeline parallel over Ray); the
    estimator's node count becomes the StatefulSet's replicas."""
    doc = inference_ws(
        resource={"instanceType": instance_type},
        inference={"preset": {"name": preset, "presetOptions": {"modelAccessSecret": "hf"}}},
    )
    if preset == "phi-4":
        del doc["inference"]["preset"]["presetOptions"]
    result = check_workspace(doc, ValidationContext())
    assert result.ok, [str(e) for e in result.errors]


def test_local_urls_are_allowed_only_when_asked() -> None:
    doc = tuning_ws(tuning={"input": {"urls": ["http://127.0.0.1:8000/train.parquet"]}})
    assert not check_workspace(doc, ValidationContext()).ok
    assert check_workspace(doc, ValidationContext(allow_local_urls=True)).ok


def test_byo_nodes_with_enough_memory_pass() -> None:
    node = NodeInfo(
        "n1",
        {
            "apps": "phi-4",
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            "nvidia.com/gpu.count": "1",
            "nvidia.com/gpu.memory": "81920",
        },
    )
    doc = inference_ws(apiVersion="kaito.sh/v1beta1", resource={"instanceType": DELETE})
    result = check_workspace(doc, ValidationContext(node_auto_provisioning=False, nodes=(node,)))
    assert result.ok, [str(e) for e in result.errors]
    # v1alpha1 defaults instanceType, which bring-your-own forbids: the message says so.
    alpha = inference_ws(resource={"instanceType": DELETE})
    result = check_workspace(alpha, ValidationContext(node_auto_provisioning=False, nodes=(node,)))
    assert [e.field for e in result.errors] == ["resource.instanceType"]
    assert "use kaito.sh/v1beta1" in str(result.errors[0])


def test_hugging_face_ids_are_accepted_on_vllm() -> None:
    doc = inference_ws(inference={"preset": {"name": "Qwen/Qwen3-8B"}})
    assert check_workspace(doc, ValidationContext()).ok
