"""Tiny random-weight models of real architectures, with a tokenizer trained on the spot.

Model weights cannot be downloaded here, so tests build a few-layer model of a real architecture
(Phi-3 by default, Llama as an alternative), train a small byte-level BPE tokenizer with a chat
template, save both with ``save_pretrained`` and load them back through the real loading code
(``AutoModelForCausalLM`` / ``AutoTokenizer``). The default attention head size is 64 because
vLLM's CPU backend refuses smaller heads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

__all__ = ("CHAT_TEMPLATE", "build_tiny_model", "make_lora_adapter", "sample_corpus")

Architecture = Literal["phi3", "llama"]

# A ChatML-like template: the tokenizer's special tokens delimit turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

SPECIAL_TOKENS = (
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
)


def sample_corpus(n: int = 400) -> list[str]:
    """Return a deterministic small English-like corpus for training the tokenizer."""
    subjects = ("the model", "a cluster", "the operator", "each node", "the adapter", "kaito")
    verbs = ("serves", "tunes", "schedules", "loads", "pushes", "watches", "reconciles")
    objects = ("requests", "workspaces", "gpus", "weights", "images", "tokens", "answers")
    lines = []
    for i in range(n):
        s = subjects[i % len(subjects)]
        v = verbs[(i // 3) % len(verbs)]
        o = objects[(i // 7) % len(objects)]
        lines.append(f"{s} {v} {o} number {i} quickly and then answers hello world.")
    return lines


def _train_tokenizer(directory: Path, vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|end|>",
        unk_token="<unk>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "</s>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 512
    fast.save_pretrained(directory)
    return fast


def build_tiny_model(
    directory: Path,
    *,
    arch: Architecture = "phi3",
    hidden_size: int = 128,
    num_heads: int = 2,
    num_layers: int = 2,
    intermediate_size: int = 256,
    vocab_size: int = 512,
    max_positions: int = 512,
    seed: int = 0,
    dtype: str = "float32",
) -> Path:
    """Build, save and return the directory of a tiny random-weight causal LM.

    The directory holds ``config.json``, ``model.safetensors`` and the tokenizer files, exactly as
    ``save_pretrained`` writes them for a real checkpoint.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(directory, vocab_size)
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_heads,
        "max_position_embeddings": max_positions,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": False,
    }
    config = Phi3Config(**common) if arch == "phi3" else LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    return directory


def make_lora_adapter(
    model_dir: Path,
    adapter_dir: Path,
    *,
    r: int = 4,
    alpha: int = 8,
    seed: int = 1,
    target_modules: tuple[str, ...] | None = None,
) -> Path:
    """Create a LoRA adapter for ``model_dir`` with PEFT and non-zero random B matrices.

    PEFT initialises B to zero (a no-op adapter); tests need an adapter that changes the logits, so
    B is filled with small random values before saving.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    modules = list(target_modules) if target_modules else _default_targets(model_dir)
    peft_model = get_peft_model(
        base, LoraConfig(r=r, lora_alpha=alpha, target_modules=modules, task_type="CAUSAL_LM")
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(adapter_dir)
    return adapter_dir


def _default_targets(model_dir: Path) -> list[str]:
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") == "phi3":
        return ["qkv_proj", "o_proj"]
    return ["q_proj", "k_proj", "v_proj", "o_proj"]
