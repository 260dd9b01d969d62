"""OCI adapter artifacts: push and pull LoRA adapters as images in upstream KAITO's layout.

Runtime layer (``kaito_runtime``): used by the tuning pod's pusher and the inference pod's adapter
puller (``python -m kaito_runtime.adapters``). Never imports the operator.
"""

from __future__ import annotations

from kaito_runtime.oci.adapter import (
    MODEL_NAME_ANNOTATION as MODEL_NAME_ANNOTATION,
)
from kaito_runtime.oci.adapter import PulledAdapter as PulledAdapter
from kaito_runtime.oci.adapter import pull_adapter as pull_adapter
from kaito_runtime.oci.adapter import push_adapter as push_adapter
from kaito_runtime.oci.credentials import Credentials as Credentials
from kaito_runtime.oci.credentials import load_credentials as load_credentials
from kaito_runtime.oci.errors import AuthenticationError as AuthenticationError
from kaito_runtime.oci.errors import DigestMismatchError as DigestMismatchError
from kaito_runtime.oci.errors import DockerConfigError as DockerConfigError
from kaito_runtime.oci.errors import ImageNotFoundError as ImageNotFoundError
from kaito_runtime.oci.errors import InvalidReferenceError as InvalidReferenceError
from kaito_runtime.oci.errors import NoAdapterError as NoAdapterError
from kaito_runtime.oci.errors import OCIError as OCIError
from kaito_runtime.oci.errors import RegistryError as RegistryError
from kaito_runtime.oci.reference import ImageReference as ImageReference
from kaito_runtime.oci.reference import parse_reference as parse_reference

__all__ = (
    "MODEL_NAME_ANNOTATION",
    "AuthenticationError",
    "Credentials",
    "DigestMismatchError",
    "DockerConfigError",
    "ImageNotFoundError",
    "ImageReference",
    "InvalidReferenceError",
    "NoAdapterError",
    "OCIError",
    "PulledAdapter",
    "RegistryError",
    "load_credentials",
    "parse_reference",
    "pull_adapter",
    "push_adapter",
)
