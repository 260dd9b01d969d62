"""Trainer callbacks: publish progress, and mark checkpoints complete once written.

Runtime layer (tuning Job). Imports transformers; loaded only when training starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kaito_runtime.tuning._checkpoints import mark_complete
from kaito_runtime.tuning._distributed import Collective
from kaito_runtime.tuning._progress import ProgressTracker

__all__ = ("CheckpointMarkerCallback", "ProgressCallback")

log = structlog.get_logger(__name__)


class ProgressCallback(TrainerCallback):
    """Turn the Trainer's log records into progress snapshots (step, loss, tokens/s, ETA).

    Tokens per second come from TRL's cumulative ``num_tokens``; the ETA extrapolates the step
    rate of this process (a resumed run does not count the steps it skipped).
    """

    def __init__(
        self, tracker: ProgressTracker, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tracker = tracker
        self._clock = clock
        self._start: tuple[int, float] | None = None
        self._last_tokens: tuple[float, float] | None = None
        self.total_tokens: int | None = None
        self.last_loss: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.is_world_process_zero:
            self.tracker.update(
                phase="training",
                message=None,
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
            )

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self._start is None:
            now = self._clock()
            self._start = (state.global_step, now)
            self._last_tokens = (0.0, now)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = self._clock()
        tokens_per_second = None
        tokens = logs.get("num_tokens")
        if tokens is not None:
            self.total_tokens = int(tokens)
            if self._last_tokens is not None and now > self._last_tokens[1]:
                seen, then = self._last_tokens
                tokens_per_second = round((tokens - seen) / (now - then), 1)
            self._last_tokens = (float(tokens), now)
        eta = None
        if self._start is not None:
            first_step, started = self._start
            done = state.global_step - first_step
            if done > 0:
                eta = round((state.max_steps - state.global_step) * (now - started) / done, 1)
        self.last_loss = float(logs["loss"])
        self.tracker.update(
            phase="training",
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=round(float(state.epoch or 0.0), 4),
            loss=round(self.last_loss, 6),
            tokens_per_second=tokens_per_second,
            eta_seconds=eta,
        )


class CheckpointMarkerCallback(TrainerCallback):
    """Mark each checkpoint complete after the Trainer has written all of it.

    With several processes, rank 0 writes the weights and optimizer state while every process
    writes its own RNG state, with no barrier in between: the marker waits for all of them.
    """

    def __init__(self, collective: Collective | None = None) -> None:
        self._collective = collective

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self._collective is not None:
            self._collective.barrier()
        if not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            mark_complete(checkpoint, state.global_step)
            log.info("checkpoint_saved", step=state.global_step, path=str(checkpoint))
