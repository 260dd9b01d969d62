"""OCI adapter artifacts: push and pull LoRA adapters as images in upstream KAITO's layout.

Runtime layer (``kaito_runtime``): used by the tuning pod's pusher and the inference pod's adapter
puller (``python -m kaito_runtime.adapters``). Never imports the operator.
"""

from __future__ import annotations

from kaito_runtime.oci._adapter import (
    MODEL_NAME_ANNOTATION as MODEL_NAME_ANNOTATION,
)
from kaito_runtime.oci._adapter import PulledAdapter as PulledAdapter
from kaito_runtime.oci._adapter import pull_adapter as pull_adapter
from kaito_runtime.oci._adapter import push_adapter as push_adapter
from kaito_runtime.oci._credentials import Credentials as Credentials
from kaito_runtime.oci._credentials import load_credentials as load_credentials
from kaito_runtime.oci._errors import AuthenticationError as AuthenticationError
from kaito_runtime.oci._errors import DigestMismatchError as DigestMismatchError
from kaito_runtime.oci._errors import DockerConfigError as DockerConfigError
from kaito_runtime.oci._errors import ImageNotFoundError as ImageNotFoundError
from kaito_runtime.oci._errors import InvalidReferenceError as InvalidReferenceError
from kaito_runtime.oci._errors import NoAdapterError as NoAdapterError
from kaito_runtime.oci._errors import OCIError as OCIError
from kaito_runtime.oci._errors import RegistryError as RegistryError
from kaito_runtime.oci._layer import sniff_layer, unpack_layer
from kaito_runtime.oci._reference import ImageReference as ImageReference
from kaito_runtime.oci._reference import parse_reference as parse_reference
from kaito_runtime.oci._registry import Manifest, RegistryClient

__all__ = (
    "MODEL_NAME_ANNOTATION",
    "AuthenticationError",
    "Credentials",
    "DigestMismatchError",
    "DockerConfigError",
    "ImageNotFoundError",
    "ImageReference",
    "InvalidReferenceError",
    "Manifest",
    "NoAdapterError",
    "OCIError",
    "PulledAdapter",
    "RegistryClient",
    "RegistryError",
    "load_credentials",
    "parse_reference",
    "pull_adapter",
    "push_adapter",
    "sniff_layer",
    "unpack_layer",
)
