"""Workspace spec types shared by ``v1alpha1`` and ``v1beta1`` (identical in both versions).

API layer. A Workspace has no ``spec:``: ``resource``, ``inference`` and ``tuning`` sit at the
object root. The version modules define what differs (``resource``, ``status``, the root type).
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from kaito.api._fields import field

__all__ = (
    "STRENGTH_PATTERN",
    "AdapterSpec",
    "DataDestination",
    "DataSource",
    "InferenceSpec",
    "Metric",
    "PartitionSpec",
    "Performance",
    "PresetOptions",
    "PresetSpec",
    "TuningSpec",
)

#: A decimal in [0, 1]: "0", "0.25", ".5", "1", "1.0". RE2-compatible (no look-arounds), because
#: kube-apiserver evaluates CRD patterns with Go's regexp.
STRENGTH_PATTERN: Final = r"^(0*1(\.0*)?|0*\.[0-9]+|0+(\.[0-9]*)?)$"
MAX_ADAPTERS: Final = 10


@attrs.frozen
class PresetOptions:
    """Options for a preset model: a private image or the secret holding a HuggingFace token."""

    image: str | None = field(
        "Name of a containerized model image (private access mode).", deprecated=True
    )
    image_pull_secrets: tuple[str, ...] | None = field(
        "Secrets in the Workspace's namespace for pulling the model image.", deprecated=True
    )
    model_access_secret: str | None = field(
        "Secret in the Workspace's namespace with key HF_TOKEN, for models that need a token."
    )


@attrs.frozen
class PresetSpec:
    """A preset model: a catalog name (``phi-3-mini-4k-instruct``) or a HuggingFace id."""

    name: str = field(
        "Preset name from the catalog, or a HuggingFace model id `org/model`.", required=True
    )
    access_mode: str | None = field(
        "Whether the model image is in a public or a private registry.",
        enum=("public", "private"),
        default="public",
        deprecated=True,
    )
    preset_options: PresetOptions | None = field("Options for the preset model.")


@attrs.frozen
class DataSource:
    """Where data comes from: URLs, a mounted volume, or an image holding it under /data."""

    name: str | None = field(
        "Name of the data; also used to name containers and volumes (a DNS-1123 label)."
    )
    urls: tuple[str, ...] | None = field("http(s) URLs of the files to download.")
    volume_source: dict[str, Any] | None = field(
        "A Kubernetes VolumeSource holding the data, mounted as is.", schemaless=True
    )
    image: str | None = field("An image with the data under its /data directory.")
    image_pull_secrets: tuple[str, ...] | None = field(
        "Secrets in the Workspace's namespace for pulling the image."
    )


@attrs.frozen
class DataDestination:
    """Where tuning output goes: a volume, or an image pushed with a push secret."""

    volume_source: dict[str, Any] | None = field(
        "A Kubernetes VolumeSource that receives the output.", schemaless=True
    )
    image: str | None = field("Image reference to push the output adapter to.")
    image_push_secret: str | None = field(
        "Secret (docker config) in the Workspace's namespace with credentials to push the image."
    )


@attrs.frozen
class AdapterSpec:
    """A LoRA adapter applied to the base model, with its strength."""

    source: DataSource | None = field("Where the adapter comes from (an image or a volume).")
    strength: str | None = field(
        'Weight of the adapter, a decimal between 0 and 1 written as a string (default "1.0").',
        pattern=STRENGTH_PATTERN,
        fix='write it as a quoted decimal between 0 and 1, e.g. "0.5" or "1.0"',
    )


@attrs.frozen
class InferenceSpec:
    """An inference service: a preset model (or a custom pod template) plus adapters."""

    preset: PresetSpec | None = field("The model to serve with preset configuration.")
    template: dict[str, Any] | None = field(
        "A PodTemplateSpec for a custom model; mutually exclusive with preset.", schemaless=True
    )
    config: str | None = field(
        "ConfigMap in the Workspace's namespace with key inference_config.yaml."
    )
    adapters: tuple[AdapterSpec, ...] | None = field(
        "Adapters applied to the base model (at most 10).",
        max_items=MAX_ADAPTERS,
        fix="merge or drop some",
    )


@attrs.frozen
class TuningSpec:
    """A fine-tuning Job: preset, method, configuration, input data and output destination."""

    preset: PresetSpec | None = field("The model to tune.")
    method: str | None = field("Parameter-efficient fine-tuning method.", enum=("lora", "qlora"))
    config: str | None = field(
        "ConfigMap in the Workspace's namespace with key training_config.yaml; "
        "defaults to the method's template."
    )
    input: DataSource = field("The training data.", required=True)
    output: DataDestination = field("Where the adapter goes.", required=True)


@attrs.frozen
class PartitionSpec:
    """A GPU partition on bring-your-own nodes: a MIG profile or a number of whole GPUs."""

    mode: str = field("Partitioning mode.", required=True, enum=("mig", "accelerator"))
    profile: str | None = field("MIG profile, e.g. 1g.10gb (mig mode only).")
    count: int | None = field(
        "Number of whole GPUs (accelerator mode only).", minimum=1, format="int32"
    )


@attrs.frozen
class Metric:
    """One benchmark measurement."""

    description: str = field("Benchmark type and load pattern.", required=True)
    value: str = field("The measured value.", required=True)
    unit: str | None = field("Unit of the value, e.g. tokens/min.")
    config: dict[str, str] | None = field("Benchmark parameters.")


@attrs.frozen
class Performance:
    """Metrics of the post-load inference benchmark, by name (e.g. peakTokensPerMinute)."""

    metrics: dict[str, Metric] | None = field("Metric name to measurement.")
