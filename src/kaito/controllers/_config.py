"""A Workspace's parameters: the ConfigMap its ``config`` names, or the default template.

Controller layer. ConfigMaps come from the informer cache; the default templates of the release
namespace are built in when the cluster has none. The inference parameters are the default
template with the user's ConfigMap merged over it; the tuning parameters are the user's
ConfigMap as is, or the method's template.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs
import yaml

from kaito.api import ValidationContext, default_template, load_config_file
from kaito.api import constants as c
from kaito.api.v1beta1 import Workspace
from kaito.controllers._inference_objects import merge_inference_config
from kaito.controllers._settings import ControllerSettings
from kaito.engine import ObjectKey, Store

__all__ = ("WorkspaceConfigs",)


@attrs.frozen
class WorkspaceConfigs:
    """Resolves the parameter ConfigMaps of Workspaces from the ConfigMap cache."""

    config_maps: Store
    settings: ControllerSettings

    def data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """ConfigMap ``namespace/name``'s data; a built-in template in the release namespace."""
        cached = self.config_maps.get(ObjectKey(namespace, name))
        if cached is not None:
            return cached.get("data") or {}
        if namespace == self.settings.release_namespace:
            return default_template(name)
        return None

    def referenced(self, ws: Workspace) -> Mapping[str, str] | None:
        """The data of the ConfigMap the Workspace's ``config`` names (None: none named)."""
        section = ws.inference or ws.tuning
        if section is None or not section.config:
            return None
        return self.data(ws.metadata.namespace or "default", section.config)

    def validation_for(self, ws: Workspace, base: ValidationContext) -> ValidationContext:
        """``base`` knowing the ConfigMap the Workspace's ``config`` names (if any)."""
        section = ws.inference or ws.tuning
        if section is None or not section.config:
            return base
        namespace = ws.metadata.namespace or "default"
        data = self.data(namespace, section.config)
        config_maps = {} if data is None else {(namespace, section.config): dict(data)}
        return attrs.evolve(base, config_maps=config_maps)

    def inference_config(self, ws: Workspace) -> str:
        """The ``inference_config.yaml`` text: the default template, the user's merged over it."""
        defaults = self.data(self.settings.release_namespace, c.DEFAULT_INFERENCE_CONFIG_TEMPLATE)
        default_text = (defaults or {}).get(c.INFERENCE_CONFIG_KEY, "")
        user = None
        if ws.inference and ws.inference.config:
            data = self.data(ws.metadata.namespace or "default", ws.inference.config) or {}
            user = data.get(c.INFERENCE_CONFIG_KEY)
        return _merged_config(default_text, user)

    def max_model_len(self, ws: Workspace) -> int | None:
        """``vllm.max-model-len`` of the inference parameters, when it is a number."""
        return _max_model_len(self.inference_config(ws))

    def training_config(self, ws: Workspace) -> str:
        """The ``training_config.yaml`` text: the user's ConfigMap, else the method's template."""
        assert ws.tuning is not None
        if ws.tuning.config:
            data = self.data(ws.metadata.namespace or "default", ws.tuning.config)
            return (data or {}).get(c.TUNING_CONFIG_KEY, "")
        template = (
            c.DEFAULT_QLORA_CONFIG_TEMPLATE
            if ws.tuning.method == "qlora"
            else c.DEFAULT_LORA_CONFIG_TEMPLATE
        )
        data = self.data(self.settings.release_namespace, template)
        return _download_at_runtime((data or {}).get(c.TUNING_CONFIG_KEY, ""))


@functools.lru_cache(maxsize=256)
def _merged_config(default_text: str, user_text: str | None) -> str:
    return merge_inference_config(default_text, user_text)


@functools.lru_cache(maxsize=256)
def _max_model_len(config_text: str) -> int | None:
    try:
        return int(str((load_config_file(config_text) or {}).get("vllm", {}).get("max-model-len")))
    except (ValueError, TypeError, AttributeError):  # ConfigFileError is a ValueError
        return None


@functools.lru_cache(maxsize=64)
def _download_at_runtime(config_text: str) -> str:
    """The default template with ``local_files_only: false``: our Jobs download the weights.

    Upstream bakes weights into preset images, so its template reads local files only; here the
    tuning container fetches the model into the weights volume. A user's ConfigMap is kept as is.
    """
    config = yaml.safe_load(config_text) or {}
    model = config.setdefault("training_config", {}).setdefault("ModelConfig", {})
    model["local_files_only"] = False
    return yaml.safe_dump(config, sort_keys=False)
