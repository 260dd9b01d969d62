"""``python -m kaito_runtime.standin``: build a stand-in model, or the guide's dataset.

Runtime layer. ``build MODEL_ID --out DIR`` builds the stand-in and prints its report as one
JSON line on stdout; ``dataset --out FILE`` writes the guide's parquet file. ``kaito up`` runs
these in a subprocess, so the manager never imports the ML stack. Exit status 2: no stand-in is
known for the model (the message says what to do instead).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kaito_runtime.logs import configure_logging
from kaito_runtime.standin._architectures import UnsupportedModelError

__all__ = ("main",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kaito_runtime.standin",
        description="Stand-in models (random weights, real architectures) and the guide's data.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the stand-in of a Hugging Face model id")
    build.add_argument("model_id", help="e.g. microsoft/Phi-3-mini-128k-instruct")
    build.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    dataset = sub.add_parser("dataset", help="write the guide's conversational parquet file")
    dataset.add_argument("--out", type=Path, required=True, help="the .parquet file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 2 for a model without a stand-in."""
    args = _parser().parse_args(argv)
    configure_logging()
    if args.command == "dataset":
        from kaito_runtime.standin._dataset import write_guide_dataset

        rows = write_guide_dataset(args.out)
        print(json.dumps({"path": str(args.out), "rows": rows}), flush=True)
        return 0
    from kaito_runtime.standin._build import build_stand_in

    _quiet()
    try:
        report = build_stand_in(args.model_id, args.out)
    except UnsupportedModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json()), flush=True)
    return 0


def _quiet() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
