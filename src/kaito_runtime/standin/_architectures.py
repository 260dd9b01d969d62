"""Which real architecture a model id has, and its scaled-down stand-in configuration.

Runtime layer (pure data). Each entry keeps what makes the architecture itself: the config class
(``Phi3Config`` for Phi-3), grouped-query attention where the real model has it, the rotary
scaling kind and context length, the chat template and special tokens of its family; the sizes
are scaled down so the whole model is about a million parameters. The attention head size stays
64, the smallest vLLM's CPU backend accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = ("ChatFamily", "StandInArchitecture", "UnsupportedModelError", "architecture_for")

HIDDEN: Final = 128
HEADS: Final = 2
HEAD_DIM: Final = HIDDEN // HEADS
LAYERS: Final = 2
INTERMEDIATE: Final = 256


class UnsupportedModelError(ValueError):
    """No stand-in is known for this model id."""


@attrs.frozen
class ChatFamily:
    """A family's chat template and the special tokens the template and generation use."""

    name: str
    template: str
    bos: str
    eos: str
    pad: str
    unk: str
    #: Turn delimiters and role markers, kept whole by the tokenizer.
    extra: tuple[str, ...]


_PHI3_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{% if message['role'] in ['system', 'user', 'assistant'] %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
_LLAMA3_TEMPLATE: Final = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
_CHATML_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_MISTRAL_TEMPLATE: Final = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}"
)
_PLAIN_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\n' }}"
    "{% else %}{{ 'User: ' + message['content'] + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

PHI3_CHAT: Final = ChatFamily(
    "phi3", _PHI3_TEMPLATE, "<s>", "<|endoftext|>", "<|endoftext|>", "<unk>",
    ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
)  # fmt: skip
LLAMA3_CHAT: Final = ChatFamily(
    "llama3", _LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", "<unk>",
    ("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"),
)  # fmt: skip
CHATML_CHAT: Final = ChatFamily(
    "chatml", _CHATML_TEMPLATE, "<|endoftext|>", "<|im_end|>", "<|endoftext|>", "<unk>",
    ("<|im_start|>",),
)  # fmt: skip
MISTRAL_CHAT: Final = ChatFamily(
    "mistral", _MISTRAL_TEMPLATE, "<s>", "</s>", "</s>", "<unk>", ("[INST]", "[/INST]")
)
PLAIN_CHAT: Final = ChatFamily(
    "plain", _PLAIN_TEMPLATE, "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", "<unk>", ()
)


@attrs.frozen
class StandInArchitecture:
    """What a stand-in of one model id is built as."""

    model_id: str
    #: The transformers config class of the real model (``Phi3Config``).
    config_class: str
    #: Config fields of the scaled-down model (token ids are added from the tokenizer).
    config: Mapping[str, Any]
    chat: ChatFamily
    vocab_size: int = 1024


def _rope_longrope(original: int, maximum: int) -> dict[str, Any]:
    """Phi-3's LongRoPE scaling, with one factor per rotary frequency of the smaller head."""
    return {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "short_factor": [1.0] * (HEAD_DIM // 2),
        "long_factor": [1.0 + i / HEAD_DIM for i in range(HEAD_DIM // 2)],
        "factor": maximum / original,
        "partial_rotary_factor": 1.0,
    }


def _common(kv_heads: int, max_positions: int) -> dict[str, Any]:
    return {
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": False,
    }


def _phi3(model_id: str, max_positions: int, *, longrope: bool, gqa: bool) -> StandInArchitecture:
    config = _common(1 if gqa else HEADS, max_positions)
    config["original_max_position_embeddings"] = 4096
    if longrope:
        config["rope_parameters"] = _rope_longrope(4096, max_positions)
    return StandInArchitecture(model_id, "Phi3Config", config, PHI3_CHAT)


def _llama(model_id: str, max_positions: int, chat: ChatFamily) -> StandInArchitecture:
    return StandInArchitecture(model_id, "LlamaConfig", _common(1, max_positions), chat)


def _mistral(model_id: str) -> StandInArchitecture:
    return StandInArchitecture(model_id, "MistralConfig", _common(1, 32768), MISTRAL_CHAT)


def _qwen2(model_id: str, max_positions: int) -> StandInArchitecture:
    return StandInArchitecture(model_id, "Qwen2Config", _common(1, max_positions), CHATML_CHAT)


def _falcon(model_id: str) -> StandInArchitecture:
    config = {
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_kv_heads": 1,
        "multi_query": True,
        "new_decoder_architecture": False,
        "parallel_attn": True,
        "bias": False,
        "max_position_embeddings": 2048,
    }
    return StandInArchitecture(model_id, "FalconConfig", config, PLAIN_CHAT)


def _phi2(model_id: str) -> StandInArchitecture:
    config = {
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "max_position_embeddings": 2048,
        "partial_rotary_factor": 0.4,
        "tie_word_embeddings": False,
    }
    return StandInArchitecture(model_id, "PhiConfig", config, PLAIN_CHAT)


# Patterns over the lower-cased Hugging Face id, first match wins.
_TABLE: Final = (
    (r"microsoft/phi-3(\.5)?-(mini|medium)-128k-instruct|microsoft/phi-3\.5-mini-instruct",
     lambda m: _phi3(m, 131072, longrope=True, gqa="medium" in m.lower())),
    (r"microsoft/phi-3-(mini|medium)-4k-instruct",
     lambda m: _phi3(m, 4096, longrope=False, gqa="medium" in m.lower())),
    (r"microsoft/phi-4-mini-instruct", lambda m: _phi3(m, 131072, longrope=True, gqa=True)),
    (r"microsoft/phi-4", lambda m: _phi3(m, 16384, longrope=False, gqa=True)),
    (r"microsoft/phi-2", _phi2),
    (r"meta-llama/.*|deepseek-ai/deepseek-r1-distill-llama-.*",
     lambda m: _llama(m, 131072, LLAMA3_CHAT)),
    (r"qwen/qwen2\.5-.*|deepseek-ai/deepseek-r1-distill-qwen-.*", lambda m: _qwen2(m, 32768)),
    (r"mistralai/mistral-7b.*", _mistral),
    (r"tiiuae/falcon-.*", _falcon),
)  # fmt: skip


def architecture_for(model_id: str) -> StandInArchitecture:
    """The stand-in architecture of ``model_id`` (a Hugging Face id, any case).

    Raises:
        UnsupportedModelError: no stand-in is known; the message lists the supported families.
    """
    wanted = model_id.strip().lower()
    for pattern, make in _TABLE:
        if re.fullmatch(pattern, wanted):
            result: StandInArchitecture = make(model_id.strip())
            return result
    raise UnsupportedModelError(
        f"no stand-in is known for model {model_id!r}: stand-ins exist for Phi-2, Phi-3, Phi-3.5 "
        "and Phi-4, Llama (and DeepSeek-R1 Llama distills), Qwen2.5 (and DeepSeek-R1 Qwen "
        "distills), Mistral-7B and Falcon models; give a local directory with the real weights "
        "instead (kaito up --model-dir PRESET=PATH)"
    )
