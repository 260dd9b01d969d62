"""The user's inference parameters are read with the bounded decoder when the controller merges
them (a ConfigMap can change after admission, so the webhook's check is not enough)."""

from __future__ import annotations

import pytest

from kaito.api import ConfigFileError
from kaito.controllers._inference_objects import merge_inference_config
from tests.support.hostile import alias_bomb

BOMB = alias_bomb()  # 10**9 leaves once expanded, under 1 KB as written


def test_the_users_parameters_merge_over_the_defaults() -> None:
    merged = merge_inference_config("vllm:\n  a: 1\n  b: 2\n", "vllm:\n  b: 3\n")
    assert merged == "vllm:\n  a: 1\n  b: 3\n"


def test_an_alias_bomb_in_the_users_parameters_is_refused_unexpanded() -> None:
    with pytest.raises(ConfigFileError, match="excessive aliasing"):
        merge_inference_config("vllm: {}\n", BOMB)
