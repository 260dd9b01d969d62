"""How each tuning process reports its outcome to the launcher that started it.

Runtime layer (tuning Job). ``torchrun`` turns any failing process into exit status 1, which
would lose the tuning command's exit codes (2 configuration, 3 input, 4 resources, 5 output) and
leave the termination message to whichever process wrote last. So the launcher
(``python -m kaito_runtime.launch tuning``) gives the processes a directory in
``$KAITO_RANK_RESULTS_DIR``; each writes ``rank-<N>.json`` (exit code and message) as it ends, and
the launcher picks the one outcome the container reports with :func:`merge_rank_results`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

__all__ = (
    "RANK_RESULTS_ENV",
    "RankResult",
    "merge_rank_results",
    "read_rank_results",
    "write_rank_result",
)

RANK_RESULTS_ENV = "KAITO_RANK_RESULTS_DIR"
UNEXPECTED = 1


@attrs.frozen
class RankResult:
    """One process's outcome: its global rank, exit code and one-line message."""

    rank: int
    exit_code: int
    message: str


def write_rank_result(result: RankResult, environ: Mapping[str, str] | None = None) -> Path | None:
    """Write ``result`` into ``$KAITO_RANK_RESULTS_DIR`` when the launcher set it; never raises."""
    directory = (os.environ if environ is None else environ).get(RANK_RESULTS_ENV)
    if not directory:
        return None
    path = Path(directory) / f"rank-{result.rank}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(attrs.asdict(result)))
        os.replace(tmp, path)
    except OSError:
        return None
    return path


def read_rank_results(directory: Path) -> list[RankResult]:
    """Return the results the processes left in ``directory``, by rank (unreadable ones skipped)."""
    results = []
    for path in directory.glob("rank-*.json"):
        try:
            document = json.loads(path.read_text())
            results.append(
                RankResult(
                    rank=int(document["rank"]),
                    exit_code=int(document["exit_code"]),
                    message=str(document["message"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(results, key=lambda r: r.rank)


def merge_rank_results(results: Sequence[RankResult], launcher_exit_code: int) -> RankResult | None:
    """Choose the outcome to report for the whole run, or None when no process reported one.

    Success is the summary of the lowest rank that ran here (rank 0's on the main node), and
    only when the launcher succeeded too. Otherwise the first
    actionable failure (exit code other than 1) by rank wins over "unexpected error" ones, which
    are often a process noticing that a peer died; then the first failure by rank.
    """
    failures = [r for r in results if r.exit_code != 0]
    if not failures:
        if launcher_exit_code != 0 or not results:
            return None
        return min(results, key=lambda r: r.rank)
    actionable = [r for r in failures if r.exit_code != UNEXPECTED]
    return (actionable or failures)[0]
