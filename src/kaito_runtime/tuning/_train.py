"""One LoRA/QLoRA tuning run: dataset, model, PEFT, TRL ``SFTTrainer``, adapter and metadata.

Runtime layer (tuning Job). The ML stack is imported here, lazily, so the command line, config
and dataset errors stay fast. The order is chosen so that cheap checks fail first: config,
dataset and columns, then the GPU fit estimate, then the slow model load.
"""

from __future__ import annotations

import codecs
import dataclasses
from pathlib import Path
from typing import Any

import attrs
import structlog

from kaito_runtime.standin import stand_in_label
from kaito_runtime.tuning._checkpoints import (
    discard_checkpoints,
    is_complete,
    latest_complete_checkpoint,
    remove_incomplete_checkpoints,
)
from kaito_runtime.tuning._config import FIX, Method, TuningConfig
from kaito_runtime.tuning._dataset import LoadedDataset, load_tuning_dataset
from kaito_runtime.tuning._distributed import Collective, Ranks
from kaito_runtime.tuning._memory import check_fits, estimate_footprint, oom_error
from kaito_runtime.tuning._outputs import (
    TuningMetadata,
    write_completion,
    write_metadata,
)
from kaito_runtime.tuning._progress import ProgressTracker
from kaito_runtime.tuning._targets import resolve_target_modules
from kaito_runtime.tuning._termination import ConfigError, InputError, OutputError

__all__ = ("TRAINING_DEFAULTS", "TuningResult", "TuningSettings", "run_tuning")

log = structlog.get_logger(__name__)

# Keys SFTConfig defaults differently from transformers' TrainingArguments, which upstream's
# ConfigMap section is named after: upstream's defaults win, except logging every step so the
# Workspace status can show progress.
TRAINING_DEFAULTS: dict[str, Any] = {
    "bf16": False,
    "activation_checkpointing": False,
    "learning_rate": 5e-5,
    "logging_steps": 1,
    "report_to": "none",
    # Upstream's template value: LoRA uses every adapted module in the forward pass, and DDP's
    # search for unused parameters costs a pass over the graph each step.
    "ddp_find_unused_parameters": False,
    # Progress goes out as structured events (callbacks.ProgressCallback), not progress bars.
    "disable_tqdm": True,
}
# Older names users may write (upstream's ConfigMaps, older TRL) -> the current field.
RENAMED_TRAINING_KEYS = {
    "max_seq_length": "max_length",
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}
MIN_KEPT_CHECKPOINTS = 2
DEFAULT_SAVE_STEPS = 500


@attrs.frozen
class TuningSettings:
    """Everything one run needs; built by the command line from flags, env and the config."""

    config: TuningConfig
    data_dir: Path
    output_dir: Path
    model: str
    method: Method
    checkpoint_dir: Path
    preset: str | None = None
    checkpoint_explicit: bool = False
    ranks: Ranks = attrs.field(factory=Ranks)


@attrs.frozen
class TuningResult:
    """Where the adapter is and what the run did (as seen by this process)."""

    output_dir: Path
    metadata: TuningMetadata
    ranks: Ranks = attrs.field(factory=Ranks)

    @property
    def summary(self) -> str:
        """The one-line success message (rank 0's is the container's termination message)."""
        m = self.metadata
        if not self.ranks.is_main:
            return f"tuning process {self.ranks.rank} of {self.ranks.world_size} finished"
        loss = f"{m.final_loss:.4f}" if m.final_loss is not None else "n/a"
        processes = f" on {m.processes} processes" if m.processes > 1 else ""
        return (
            f"tuning completed: {m.method} adapter for {m.preset or m.base_model} after "
            f"{m.steps} steps{processes}, final loss {loss}, in {self.output_dir}"
        )


def _dtype(name: str | None) -> Any:
    import torch

    if name is None:
        return None
    name = name.removeprefix("torch.")
    if name == "auto":
        return "auto"
    return {"float": torch.float32, "half": torch.float16}.get(name) or getattr(torch, name)


def _chat_template(value: str) -> str:
    """Upstream's rule: text with ``{``, ``}`` or a newline is the template, else a file path."""
    if any(c in value for c in "{}\n"):
        return codecs.decode(value, "unicode_escape")
    try:
        return Path(value).read_text()
    except OSError as exc:
        raise ConfigError(
            f"ModelConfig.chat_template={value!r} is neither a template nor a readable file "
            f"({exc.strerror}); {FIX}"
        ) from None


def _load_tokenizer(settings: TuningSettings) -> tuple[Any, bool]:
    from transformers import AutoTokenizer

    model_cfg = settings.config.model
    tokenizer = AutoTokenizer.from_pretrained(
        settings.model,
        revision=model_cfg.revision,
        trust_remote_code=model_cfg.trust_remote_code,
        local_files_only=model_cfg.local_files_only,
        cache_dir=model_cfg.cache_dir,
    )
    changed = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        changed = True
    if model_cfg.chat_template:
        tokenizer.chat_template = _chat_template(model_cfg.chat_template)
        changed = True
    return tokenizer, changed


def _quantization(settings: TuningSettings, on_gpu: bool) -> Any:
    from transformers import BitsAndBytesConfig

    q = settings.config.quantization
    if not q.quantized:
        return None
    compute = q.bnb_4bit_compute_dtype
    if not on_gpu and compute != "float32":
        log.info("qlora_cpu_compute_dtype", configured=compute, used="float32")
        compute = "float32"
    kwargs: dict[str, Any] = {
        "load_in_4bit": q.load_in_4bit,
        "load_in_8bit": q.load_in_8bit,
        "llm_int8_threshold": q.llm_int8_threshold,
        "llm_int8_skip_modules": q.llm_int8_skip_modules,
        "llm_int8_enable_fp32_cpu_offload": q.llm_int8_enable_fp32_cpu_offload,
        "llm_int8_has_fp16_weight": q.llm_int8_has_fp16_weight,
        "bnb_4bit_compute_dtype": _dtype(compute),
        "bnb_4bit_quant_type": q.bnb_4bit_quant_type,
        "bnb_4bit_use_double_quant": q.bnb_4bit_use_double_quant,
    }
    if q.bnb_4bit_quant_storage:
        kwargs["bnb_4bit_quant_storage"] = _dtype(q.bnb_4bit_quant_storage)
    return BitsAndBytesConfig(**kwargs)  # type: ignore[no-untyped-call]


def _device_map(settings: TuningSettings, on_gpu: bool) -> Any:
    if not on_gpu:
        return {"": "cpu"} if settings.config.quantization.quantized else None
    if settings.ranks.distributed:
        # One whole copy of the model per process, on the process's own GPU (DDP).
        return {"": settings.ranks.local_rank}
    return settings.config.model.device_map


def _load_model(settings: TuningSettings, on_gpu: bool) -> Any:
    from transformers import AutoModelForCausalLM

    model_cfg = settings.config.model
    model = AutoModelForCausalLM.from_pretrained(
        settings.model,
        dtype=_dtype(model_cfg.torch_dtype),
        device_map=_device_map(settings, on_gpu),
        quantization_config=_quantization(settings, on_gpu),
        revision=model_cfg.revision,
        trust_remote_code=model_cfg.trust_remote_code,
        local_files_only=model_cfg.local_files_only,
        cache_dir=model_cfg.cache_dir,
    )
    if settings.config.quantization.quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    model.config.use_cache = False
    return model


def _linear_module_names(model: Any) -> list[str]:
    import torch

    names = []
    for name, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear) or "Linear" in type(module).__name__
        if is_linear and name:
            names.append(name)
    return names


def _check_lora_keys(settings: TuningSettings) -> None:
    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    unknown = sorted(set(settings.config.lora) - known)
    if unknown:
        raise ConfigError(
            f"training_config.LoraConfig has unknown keys {', '.join(unknown)} (see PEFT's "
            f"LoraConfig for the valid ones, e.g. r, lora_alpha, lora_dropout, target_modules); "
            f"{FIX}"
        )


def _lora_config(settings: TuningSettings, model: Any) -> Any:
    from peft import LoraConfig
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    values = dict(settings.config.lora)
    linear = _linear_module_names(model)
    requested = values.get("target_modules")
    model_type = getattr(model.config, "model_type", None)
    no_targets = requested is None and values.get("target_parameters") is None
    if no_targets and model_type not in PEFT_DEFAULTS:
        leaves = sorted({name.rsplit(".", 1)[-1] for name in linear})
        raise ConfigError(
            "training_config.LoraConfig.target_modules is not set and PEFT has no default "
            f"for model type {model_type!r}; set it to some of the model's linear layers: "
            f"{', '.join(leaves)} (or 'all-linear'); {FIX}"
        )
    values["target_modules"] = resolve_target_modules(requested, linear)
    values["task_type"] = "CAUSAL_LM"
    try:
        return LoraConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training_config.LoraConfig is invalid: {exc}; {FIX}") from None


def _training_arguments(settings: TuningSettings, data: LoadedDataset, on_gpu: bool) -> Any:
    from trl.trainer.sft_config import SFTConfig

    config = settings.config
    values: dict[str, Any] = dict(TRAINING_DEFAULTS)
    user = dict(config.training)
    for old, new in RENAMED_TRAINING_KEYS.items():
        if old in user and new not in user:
            user[new] = user.pop(old)
    values.update(user)
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"training_config.TrainingArguments has unknown keys {', '.join(unknown)} (valid: "
            "transformers TrainingArguments and TRL SFTConfig fields); "
            f"{FIX}"
        )
    values["output_dir"] = str(settings.checkpoint_dir)
    if not on_gpu:
        values["use_cpu"] = True
    if settings.checkpoint_explicit and values.get("save_strategy", "steps") == "no":
        values["save_strategy"] = "steps"
        values.setdefault("save_steps", DEFAULT_SAVE_STEPS)
        log.info("checkpointing_enabled", save_steps=values["save_steps"])
    if values.get("save_strategy", "steps") != "no":
        limit = values.get("save_total_limit")
        if limit is None or limit < MIN_KEPT_CHECKPOINTS:
            values["save_total_limit"] = max(limit or MIN_KEPT_CHECKPOINTS, MIN_KEPT_CHECKPOINTS)
    if data.format.kind == "text":
        values["dataset_text_field"] = "text"
    collator = config.collator
    if collator.mlm:
        log.info("data_collator_mlm_ignored", reason="causal language modeling never masks")
    if collator.pad_to_multiple_of is not None:
        values.setdefault("pad_to_multiple_of", collator.pad_to_multiple_of)
    try:
        return SFTConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training_config.TrainingArguments is invalid: {exc}; {FIX}") from None


def _gpu(ranks: Ranks) -> tuple[str, int] | None:
    """This process's GPU (name, bytes), or None on a machine without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    if ranks.local_rank >= count:
        raise ConfigError(
            f"tuning process {ranks.rank} is number {ranks.local_rank} on its node but the "
            f"node has {count} GPU(s); start at most one process per GPU (launcher flag "
            f"--processes-per-node {count}, or accelerate's --num_processes)"
        )
    props = torch.cuda.get_device_properties(ranks.local_rank)
    return str(props.name), int(props.total_memory)


def _resume_checkpoint(directory: Path, collective: Collective) -> Path | None:
    """The checkpoint every process resumes from: rank 0's newest complete one, or None.

    Rank 0 removes unmarked checkpoints and chooses; the others follow. When some process cannot
    see the chosen checkpoint (several nodes, each with its own output volume), all of them
    start from step 0 instead, since processes resuming from different steps cannot train
    together; rank 0 then discards its old checkpoints, which the new run would otherwise save
    into while their old completion markers still stand.
    """
    chosen: str | None = None
    if collective.ranks.is_main:
        remove_incomplete_checkpoints(directory)
        latest = latest_complete_checkpoint(directory)
        chosen = latest.name if latest else None
    chosen = collective.broadcast(chosen)
    if chosen is None:
        return None
    path = directory / chosen
    if collective.all_true(is_complete(path)):
        return path
    if collective.ranks.is_main:
        discarded = discard_checkpoints(directory)
        log.warning(
            "checkpoint_not_shared",
            checkpoint=str(path),
            discarded=[p.name for p in discarded],
            reason="some tuning processes cannot read it; put checkpoints on a shared volume",
        )
    return None


def run_tuning(settings: TuningSettings, tracker: ProgressTracker) -> TuningResult:
    """Tune a LoRA adapter and write it, its metadata and the completion marker.

    Resumes from the newest complete checkpoint in ``settings.checkpoint_dir`` (an interrupted
    run does not start again from step 0). With several processes (``settings.ranks``) each
    trains on its share of every batch, and only rank 0 writes the adapter, the metadata and,
    once every process has finished training, the completion marker. Raises ActionableError
    subclasses for problems a user can fix.
    """
    import torch

    _quiet_libraries()
    config = settings.config
    ranks = settings.ranks
    try:
        settings.output_dir.mkdir(parents=True, exist_ok=True)
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output directory {str(settings.output_dir)!r}: {exc.strerror}; "
            "check the output volume"
        ) from None
    batch_size = int(config.training.get("per_device_train_batch_size", 8))
    gpu = _gpu(ranks)
    gpu_name, gpu_bytes = gpu or ("cpu", 0)
    collective = Collective(ranks, cpu=gpu is None)
    with collective.main_first():  # rank 0 fills the datasets cache, the others reuse it
        data = load_tuning_dataset(
            settings.data_dir,
            config.dataset,
            batch_size=batch_size,
            cache_dir=settings.checkpoint_dir / ".datasets-cache",
        )
    _check_lora_keys(settings)
    args = _training_arguments(settings, data, gpu is not None)
    if gpu is not None:
        footprint = estimate_footprint(
            Path(settings.model),
            torch_dtype=config.model.torch_dtype,
            load_in_4bit=config.quantization.load_in_4bit,
            load_in_8bit=config.quantization.load_in_8bit,
        )
        if footprint is not None:
            check_fits(
                footprint,
                model=settings.preset or settings.model,
                method=settings.method,
                gpu_name=gpu_name,
                gpu_bytes=gpu_bytes,
            )

    def out_of_memory(phase: str) -> Exception:
        max_length = config.training.get("max_length", config.training.get("max_seq_length"))
        return oom_error(
            phase,
            gpu_name=gpu_name,
            gpu_bytes=gpu_bytes,
            batch_size=batch_size,
            max_length=max_length if max_length is not None else 1024,
        )

    tracker.update(phase="loading", message=f"loading {settings.model}")
    try:
        tokenizer, tokenizer_changed = _load_tokenizer(settings)
    except (OSError, ValueError) as exc:
        raise _model_error(settings, exc) from None
    if data.format.kind == "messages" and not tokenizer.chat_template:
        raise ConfigError(
            f"the dataset is conversational but the tokenizer of {settings.model!r} has no chat "
            f"template; set ModelConfig.chat_template (a Jinja template or a file path); {FIX}"
        )
    try:
        model = _load_model(settings, gpu is not None)
    except torch.OutOfMemoryError:
        raise out_of_memory("loading the model") from None
    except (OSError, ValueError) as exc:
        raise _model_error(settings, exc) from None
    stand_in = stand_in_label(getattr(model, "config", None))
    if stand_in:
        log.warning("model_is_stand_in", model=settings.model, note=stand_in)
    lora_config = _lora_config(settings, model)
    trainer, progress = _trainer(
        model=model,
        args=args,
        data=data,
        tokenizer=tokenizer,
        lora_config=lora_config,
        tracker=tracker,
        collective=collective,
    )

    resume = _resume_checkpoint(settings.checkpoint_dir, collective)
    resumed_from = int(resume.name.rsplit("-", 1)[1]) if resume else 0
    if resume is not None and ranks.is_main:
        log.info("training_resumed", checkpoint=str(resume), step=resumed_from)
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except torch.OutOfMemoryError:
        raise out_of_memory("training") from None
    collective.barrier()  # every process has finished training

    runtime = float(output.metrics.get("train_runtime", 0.0))
    metadata = TuningMetadata(
        base_model=settings.model,
        preset=settings.preset,
        method=settings.method,
        steps=int(output.global_step),
        epochs=round(float(trainer.state.epoch or 0.0), 4),
        final_loss=progress.last_loss,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        dataset_fingerprint=data.fingerprint,
        dataset_files=[f.name for f in data.files],
        dataset_rows=data.rows,
        dataset_format=data.format.kind,
        train_runtime_seconds=round(runtime, 3),
        train_tokens=progress.total_tokens,
        tokens_per_second=(
            round(progress.total_tokens / runtime, 1)
            if progress.total_tokens and runtime > 0
            else None
        ),
        resumed_from_step=resumed_from,
        target_modules=_as_json(lora_config.target_modules),
        base_model_stand_in=stand_in,
        device=gpu_name,
        peak_gpu_memory_bytes=int(torch.cuda.max_memory_allocated()) if gpu else None,
        processes=ranks.world_size,
    )
    result = TuningResult(output_dir=settings.output_dir, metadata=metadata, ranks=ranks)
    if not ranks.is_main:
        return result
    tracker.update(phase="saving")
    trainer.model.save_pretrained(settings.output_dir)
    if tokenizer_changed:
        tokenizer.save_pretrained(settings.output_dir)
    write_metadata(settings.output_dir, metadata)
    write_completion(settings.output_dir, result.summary)
    tracker.update(phase="completed", step=metadata.steps, eta_seconds=0.0)
    log.info(
        "tuning_completed",
        steps=metadata.steps,
        final_loss=metadata.final_loss,
        processes=ranks.world_size,
    )
    return result


def _model_error(settings: TuningSettings, exc: Exception) -> InputError:
    reason = " ".join(str(exc).split())[:400]
    hint = "pass --model with a directory holding config.json, the weights and the tokenizer"
    if settings.config.model.local_files_only:
        hint += (
            " (ModelConfig.local_files_only is true, so nothing is downloaded; set it to false "
            "to download a Hugging Face model id)"
        )
    return InputError(f"cannot load the base model {settings.model!r}: {reason}; {hint}")


def _quiet_libraries() -> None:
    """Silence progress bars and chatter of the ML libraries; our events say what happens."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_warning()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _as_json(value: Any) -> list[str] | str | None:
    if value is None or isinstance(value, str):
        return value
    return sorted(str(v) for v in value)


def _trainer(
    *,
    model: Any,
    args: Any,
    data: LoadedDataset,
    tokenizer: Any,
    lora_config: Any,
    tracker: ProgressTracker,
    collective: Collective,
) -> tuple[Any, Any]:
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.sft_trainer import SFTTrainer

    from kaito_runtime.tuning._callbacks import CheckpointMarkerCallback, ProgressCallback

    progress = ProgressCallback(tracker)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=tokenizer,
        peft_config=lora_config,
        callbacks=[progress, CheckpointMarkerCallback(collective)],
    )
    trainer.remove_callback(PrinterCallback)  # prints raw log dicts; ours are structured
    return trainer, progress
