"""Build a stand-in: a random-weight, scaled-down model of a real architecture, with a tokenizer
trained here, saved as ``save_pretrained`` saves a real checkpoint.

Runtime layer (imports torch, transformers and tokenizers when called). Deterministic: the same
model id gives byte-identical files with the same library versions, because every tensor is
drawn from a generator seeded by the model id and the tensor's name, and the tokenizer is trained
on a fixed corpus; so an adapter tuned on one machine's stand-in loads on another's. The config
carries ``kaito_stand_in`` and the folder a ``kaito-stand-in.json``, so no program mistakes a
stand-in for the real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import structlog

from kaito_runtime.standin._architectures import StandInArchitecture, architecture_for
from kaito_runtime.standin._corpus import tokenizer_corpus

__all__ = (
    "STAND_IN_MARKER",
    "StandInReport",
    "build_stand_in",
    "read_marker",
    "stand_in_label",
    "stand_in_note",
)

log = structlog.get_logger(__name__)

#: The file in a stand-in's folder that says what it is (not part of its digest).
STAND_IN_MARKER: Final = "kaito-stand-in.json"
_INIT_STD: Final = 0.02
_MAX_LENGTH: Final = 2048


@attrs.frozen
class StandInReport:
    """What was built: the model it stands in for, its architecture, size and digest."""

    model_id: str
    path: Path
    config_class: str
    parameters: int
    #: sha256 over every file's name and content (the marker excluded).
    digest: str
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "path": str(self.path),
            "config_class": self.config_class,
            "parameters": self.parameters,
            "digest": self.digest,
            "note": self.note,
        }


def stand_in_note(model_id: str, config_class: str, parameters: int) -> str:
    """The one-line label every stand-in carries (logs, events, answers)."""
    return (
        f"stand-in for {model_id}: a {config_class} scaled down to {parameters:,} random "
        "parameters with a tokenizer trained locally; NOT the real model, its answers are noise"
    )


def stand_in_label(config: Any) -> str | None:
    """The label of a loaded model's config (``transformers`` or vLLM's ``hf_config``) when it
    is a stand-in, else None."""
    marker = getattr(config, "kaito_stand_in", None)
    if not isinstance(marker, dict):
        return None
    note = marker.get("note")
    if isinstance(note, str) and note:
        return note
    return f"stand-in for {marker.get('stand_in_for', 'an unknown model')}: NOT the real model"


def read_marker(model_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stand-in marker of a model folder, or ``None`` for a real model."""
    path = Path(model_dir, STAND_IN_MARKER)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _train_tokenizer(arch: StandInArchitecture) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    chat = arch.chat
    specials = list(dict.fromkeys((chat.unk, chat.pad, chat.bos, chat.eos, *chat.extra)))
    tok = Tokenizer(models.BPE(unk_token=chat.unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=arch.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    named = (chat.unk, chat.pad, chat.bos, chat.eos)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=chat.bos,
        eos_token=chat.eos,
        pad_token=chat.pad,
        unk_token=chat.unk,
        additional_special_tokens=[t for t in specials if t not in named],
    )
    fast.chat_template = chat.template
    fast.model_max_length = _MAX_LENGTH
    return fast


def _seed(model_id: str, name: str) -> int:
    digest = hashlib.sha256(f"{model_id.lower()}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _fill(model: Any, model_id: str) -> int:
    """Overwrite every tensor from its own seeded generator; returns the parameter count."""
    import torch

    count = 0
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if not tensor.is_floating_point():
                continue
            if tensor.ndim == 1:
                tensor.fill_(0.0 if name.endswith("bias") else 1.0)
            else:
                generator = torch.Generator().manual_seed(_seed(model_id, name))
                values = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
                tensor.copy_(values * _INIT_STD)
        count = sum(p.numel() for p in model.parameters())
    return int(count)


def _digest(directory: Path) -> str:
    hasher = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative == STAND_IN_MARKER:
            continue
        hasher.update(relative.encode() + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return hasher.hexdigest()


def _config(arch: StandInArchitecture, tokenizer: Any, marker: Mapping[str, Any]) -> Any:
    import transformers

    config_class = getattr(transformers, arch.config_class)
    config = config_class(
        **arch.config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.kaito_stand_in = dict(marker)
    return config


def build_stand_in(model_id: str, out: str | os.PathLike[str]) -> StandInReport:
    """Build the stand-in of ``model_id`` into ``out`` (replaced atomically if it exists).

    Raises:
        UnsupportedModelError: no stand-in is known for ``model_id``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    arch = architecture_for(model_id)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".stand-in-", dir=target.parent))
    try:
        tokenizer = _train_tokenizer(arch)
        tokenizer.save_pretrained(scratch)
        marker = {"stand_in_for": arch.model_id, "random_weights": True}
        config = _config(arch, tokenizer, marker)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=torch.float32
        )
        parameters = _fill(model, arch.model_id)
        note = stand_in_note(arch.model_id, arch.config_class, parameters)
        model.config.kaito_stand_in = {**marker, "note": note}
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.bos_token_id
        model.save_pretrained(scratch)
        digest = _digest(scratch)
        report = StandInReport(arch.model_id, target, arch.config_class, parameters, digest, note)
        body = {k: v for k, v in report.to_json().items() if k != "path"}
        (scratch / STAND_IN_MARKER).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    log.info("stand_in_built", model=arch.model_id, path=str(target), parameters=parameters,
             digest=digest)  # fmt: skip
    return report
