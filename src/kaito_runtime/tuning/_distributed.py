"""Which process of a multi-process tuning run this is, and the few collectives the run needs.

Runtime layer (tuning Job). ``accelerate launch`` (through ``torchrun``) starts one process per
GPU, on one node or several, and tells each its place in the ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` environment variables. :class:`Ranks` reads them without importing torch, so the
command line can decide cheaply which process serves ``/progress`` and writes files (global rank
0 only). :class:`Collective` wraps accelerate's ``PartialState`` (gloo on CPUs, NCCL on GPUs) for
the barriers and agreements around loading, resuming and saving; with one process every call is
a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from kaito_runtime.tuning._termination import ConfigError

__all__ = ("Collective", "Ranks")

_ENV = (("RANK", "rank"), ("LOCAL_RANK", "local_rank"), ("WORLD_SIZE", "world_size"))


@attrs.frozen
class Ranks:
    """This process's place in the run: global rank, rank on its node, and process count."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True for the one process that serves progress and writes the outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ranks:
        """Read ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (as set by torchrun); default 0/0/1.

        Raises:
            ConfigError: a variable is not a number, or the ranks do not fit the world size.
        """
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name, field in _ENV:
            raw = env.get(name, "")
            if not raw:
                continue
            try:
                values[field] = int(raw)
            except ValueError:
                raise ConfigError(
                    f"environment variable {name}={raw!r} is not an integer; start the tuning "
                    "processes with `python -m kaito_runtime.launch tuning` or `accelerate "
                    "launch`, which set it"
                ) from None
        ranks = cls(**values)
        if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size:
            raise ConfigError(
                f"RANK={ranks.rank} does not fit WORLD_SIZE={ranks.world_size}; start the "
                "tuning processes with `python -m kaito_runtime.launch tuning`"
            )
        return ranks


class Collective:
    """Barriers and agreements across the tuning processes (accelerate's ``PartialState``).

    Creating it joins the process group (the same one the Trainer uses later), so every process
    of the run must create it at the same point. With one process nothing is exchanged.
    """

    def __init__(self, ranks: Ranks, *, cpu: bool) -> None:
        self.ranks = ranks
        self._state: Any = None
        if ranks.distributed:
            from accelerate import PartialState

            # cpu=True selects gloo; without it accelerate ignores torchrun's ranks on a machine
            # without GPUs and every process would train alone.
            self._state = PartialState(cpu=cpu)

    def barrier(self) -> None:
        """Wait until every process has reached this point."""
        if self._state is not None:
            self._state.wait_for_everyone()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the body on rank 0 first, then on the others (which then reuse its caches)."""
        if self._state is None:
            yield
            return
        with self._state.main_process_first():
            yield

    def broadcast(self, value: Any) -> Any:
        """Return rank 0's ``value`` on every process (a small picklable object)."""
        if self._state is None:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def all_true(self, flag: bool) -> bool:
        """Return True on every process when ``flag`` is True on every process."""
        if self._state is None:
            return flag
        from accelerate.utils import gather_object

        return all(gather_object([bool(flag)]))
