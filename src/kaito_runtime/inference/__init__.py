"""The inference server that runs in the pod: OpenAI-compatible API and KAITO's ``/chat``.

Runtime layer (``kaito_runtime``): never imports the operator. Two backends behind one HTTP
surface: vLLM (the default on GPU) and transformers (the CPU fallback). Importing this package
does not import torch; the backends load it when the engine starts.
"""

from __future__ import annotations

from kaito_runtime.inference._adapters import AdapterSpec as AdapterSpec
from kaito_runtime.inference._adapters import discover_adapters as discover_adapters
from kaito_runtime.inference._app import AppState as AppState
from kaito_runtime.inference._app import build_app as build_app
from kaito_runtime.inference._cli import main as main
from kaito_runtime.inference._config_file import KaitoConfig as KaitoConfig
from kaito_runtime.inference._config_file import load_kaito_config as load_kaito_config
from kaito_runtime.inference._engine import ChatMessage as ChatMessage
from kaito_runtime.inference._engine import Engine as Engine
from kaito_runtime.inference._engine import GenerationDelta as GenerationDelta
from kaito_runtime.inference._engine import GenerationRequest as GenerationRequest
from kaito_runtime.inference._engine import ModelInfo as ModelInfo
from kaito_runtime.inference._engine import SamplingOptions as SamplingOptions
from kaito_runtime.inference._errors import ConfigError as ConfigError
from kaito_runtime.inference._lora_weights import PreparedAdapters as PreparedAdapters
from kaito_runtime.inference._lora_weights import prepare_adapters as prepare_adapters
from kaito_runtime.inference._server import bind_socket as bind_socket
from kaito_runtime.inference._server import serve as serve
from kaito_runtime.inference._settings import InferenceSettings as InferenceSettings
from kaito_runtime.inference._settings import Limits as Limits

__all__ = (
    "AdapterSpec",
    "AppState",
    "ChatMessage",
    "ConfigError",
    "Engine",
    "GenerationDelta",
    "GenerationRequest",
    "InferenceSettings",
    "KaitoConfig",
    "Limits",
    "ModelInfo",
    "PreparedAdapters",
    "SamplingOptions",
    "bind_socket",
    "build_app",
    "discover_adapters",
    "load_kaito_config",
    "main",
    "prepare_adapters",
    "serve",
)
