"""The tuning dataset: find the files, load them with ``datasets``, check the columns, split.

Runtime layer (tuning Job). Accepted formats are those upstream (and TRL's ``SFTTrainer``)
accept, normalised to TRL's column names:

- conversational: a ``messages`` column (or ``DatasetConfig.messages_column``) holding
  ``[{"role": ..., "content": ...}, ...]``;
- prompt/completion: ``prompt`` + ``completion`` columns, or instruction/response data named by
  ``DatasetConfig.context_column`` + ``response_column``;
- plain text: the ``response_column`` (default ``text``).

Files are parquet, JSON/JSONL, CSV or Arrow; every file of the one format found under the input
directory is loaded (upstream loads only the first).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import attrs
import structlog

from kaito_runtime.tuning._config import DatasetSection
from kaito_runtime.tuning._termination import InputError

__all__ = (
    "EXTENSIONS",
    "DatasetFormat",
    "LoadedDataset",
    "detect_format",
    "find_dataset_files",
    "fingerprint_files",
    "load_tuning_dataset",
)

log = structlog.get_logger(__name__)

# File suffix -> the ``datasets`` builder that reads it.
EXTENSIONS = {
    "parquet": "parquet",
    "json": "json",
    "jsonl": "json",
    "csv": "csv",
    "arrow": "arrow",
}
IGNORED_SUFFIXES = (".part", ".meta", ".lock")
FIX = "set DatasetConfig in the tuning ConfigMap"
Kind = Literal["messages", "prompt_completion", "text"]


@attrs.frozen
class DatasetFormat:
    """Which format the data is in and which source columns become TRL's columns."""

    kind: Kind
    renames: dict[str, str]

    @property
    def columns(self) -> list[str]:
        """The TRL column names after renaming."""
        return list(self.renames.values())


@attrs.frozen
class LoadedDataset:
    """The train and (optional) eval splits, the format, and where the rows came from."""

    train: Any
    eval: Any | None
    format: DatasetFormat
    files: tuple[Path, ...]
    fingerprint: str
    rows: int


def _builder_for(path: Path, explicit: str | None) -> str | None:
    if explicit:
        name = explicit.lower().lstrip(".")
        if name not in EXTENSIONS:
            raise InputError(
                f"DatasetConfig.dataset_extension={explicit!r} is not supported; use one of "
                f"{', '.join(EXTENSIONS)}"
            )
        return EXTENSIONS[name]
    suffix = path.suffix.lower().lstrip(".")
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    # Upstream matches the extension anywhere in the name (``x.parquet_download_true``).
    lowered = path.name.lower()
    for ext in ("parquet", "jsonl", "json", "csv", "arrow"):
        if ext in lowered:
            return EXTENSIONS[ext]
    return None


def _candidate(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    if any(part.startswith(".") for part in relative.parts):
        return False
    return path.is_file() and not path.name.endswith(IGNORED_SUFFIXES)


def find_dataset_files(data_dir: Path, config: DatasetSection) -> tuple[str, list[Path]]:
    """Return the ``datasets`` builder name and the files to load.

    ``dataset_path`` (absolute, or relative to ``data_dir``; upstream's paths relative to
    ``/mnt`` also work) selects one file or directory; otherwise every supported file under
    ``data_dir`` is used, and they must all have one format.
    """
    root = data_dir
    if config.dataset_path:
        chosen = Path(config.dataset_path)
        if not chosen.is_absolute():
            under_data = data_dir / chosen
            upstream_style = data_dir.parent / chosen
            chosen = (
                under_data
                if under_data.exists() or not upstream_style.exists()
                else (upstream_style)
            )
        if not chosen.exists():
            raise InputError(
                f"DatasetConfig.dataset_path={config.dataset_path!r} does not exist "
                f"(looked at {str(chosen)!r}); fix the path or the input data"
            )
        if chosen.is_file():
            builder = _builder_for(chosen, config.dataset_extension)
            if builder is None:
                raise InputError(
                    f"cannot tell the format of {str(chosen)!r}; set "
                    f"DatasetConfig.dataset_extension to one of {', '.join(EXTENSIONS)}"
                )
            return builder, [chosen]
        root = chosen
    if not root.is_dir():
        raise InputError(f"the input directory {str(root)!r} does not exist; check the input")
    by_builder: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if not _candidate(path, root):
            continue
        builder = _builder_for(path, config.dataset_extension)
        if builder is not None:
            by_builder.setdefault(builder, []).append(path)
    if not by_builder:
        found = sorted(p.name for p in root.rglob("*") if p.is_file())[:10]
        raise InputError(
            f"no dataset file under {str(root)!r} (found: {', '.join(found) or 'nothing'}); "
            f"provide parquet, json, jsonl, csv or arrow files"
        )
    if len(by_builder) > 1:
        listing = "; ".join(f"{b}: {', '.join(p.name for p in ps)}" for b, ps in by_builder.items())
        raise InputError(
            f"the input holds files of several formats ({listing}); set "
            "DatasetConfig.dataset_path to the one to use"
        )
    ((builder, files),) = by_builder.items()
    return builder, files


def detect_format(columns: Iterable[str], config: DatasetSection) -> DatasetFormat:
    """Decide the dataset format from its columns and the configured column names."""
    names = list(columns)
    found = ", ".join(names) or "none"

    def need(*wanted: str, keys: str) -> None:
        missing = [c for c in wanted if c not in names]
        if missing:
            raise InputError(
                f"the dataset has no column {', '.join(missing)} (configured by "
                f"DatasetConfig.{keys}); the columns found are: {found}; fix the column names "
                "in DatasetConfig or the data"
            )

    if config.messages_column:
        need(config.messages_column, keys="messages_column")
        return DatasetFormat("messages", {config.messages_column: "messages"})
    if config.context_column:
        need(config.context_column, config.response_column, keys="context_column/response_column")
        return DatasetFormat(
            "prompt_completion",
            {config.context_column: "prompt", config.response_column: "completion"},
        )
    if "messages" in names:
        return DatasetFormat("messages", {"messages": "messages"})
    if "prompt" in names and "completion" in names:
        return DatasetFormat("prompt_completion", {"prompt": "prompt", "completion": "completion"})
    if config.response_column in names:
        return DatasetFormat("text", {config.response_column: "text"})
    raise InputError(
        f"the dataset's columns ({found}) match no supported format; use a 'messages' column "
        "(conversational), 'prompt' and 'completion', or 'text', or name yours in DatasetConfig "
        "(messages_column; context_column and response_column; or response_column)"
    )


def _check_messages(rows: Iterable[Any], column: str) -> None:
    for index, row in enumerate(rows):
        turns = row
        ok = isinstance(turns, list) and bool(turns)
        if ok:
            ok = all(
                isinstance(t, dict)
                and isinstance(t.get("role"), str)
                and isinstance(t.get("content"), str)
                for t in turns
            )
        if not ok:
            raise InputError(
                f"row {index} of the dataset's {column!r} column is not a list of "
                f"{{'role': ..., 'content': ...}} messages (got {str(turns)[:120]}); fix the data"
            )


def fingerprint_files(files: Iterable[Path]) -> str:
    """Return ``sha256:<hex>`` over the files' names and bytes, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def load_tuning_dataset(
    data_dir: Path,
    config: DatasetSection,
    *,
    batch_size: int = 1,
    cache_dir: Path | None = None,
) -> LoadedDataset:
    """Load, normalise, shuffle and split the dataset; raise InputError with the fix.

    ``batch_size`` is ``per_device_train_batch_size``: the training split must hold at least
    that many rows.
    """
    import datasets

    builder, files = find_dataset_files(data_dir, config)
    cache = str(cache_dir) if cache_dir else tempfile.mkdtemp(prefix="kaito-datasets-")
    try:
        data = datasets.load_dataset(
            builder, data_files=[str(f) for f in files], split="train", cache_dir=cache
        )
    except Exception as exc:
        raise InputError(
            f"cannot read {', '.join(f.name for f in files)} as {builder}: "
            f"{type(exc).__name__}: {str(exc)[:300]}; check the file format "
            "(or set DatasetConfig.dataset_extension)"
        ) from None
    fmt = detect_format(data.column_names, config)
    data = data.select_columns(list(fmt.renames))
    for source, target in fmt.renames.items():
        if source != target:
            data = data.rename_column(source, target)
    if fmt.kind == "messages":
        _check_messages(data["messages"][:1000], next(iter(fmt.renames)))
    before = len(data)
    data = data.filter(lambda row: all(row[c] not in (None, "", []) for c in fmt.columns))
    if len(data) < before:
        log.warning("dataset_empty_rows_dropped", dropped=before - len(data))
    rows = len(data)
    if config.shuffle_dataset:
        data = data.shuffle(seed=config.shuffle_seed)
    train, evaluation = data, None
    if config.train_test_split < 1:
        try:
            split = data.train_test_split(
                test_size=round(1 - config.train_test_split, 6), seed=config.shuffle_seed
            )
        except ValueError as exc:
            raise InputError(
                f"the dataset has {rows} rows, too few for train_test_split="
                f"{config.train_test_split} ({exc}); add rows or set "
                "DatasetConfig.train_test_split: 1"
            ) from None
        train, evaluation = split["train"], split["test"]
    if len(train) < max(1, batch_size):
        raise InputError(
            f"the training split has {len(train)} rows (of {rows} in the dataset), fewer than "
            f"per_device_train_batch_size={batch_size}; add rows, lower "
            "TrainingArguments.per_device_train_batch_size, or raise "
            "DatasetConfig.train_test_split"
        )
    log.info(
        "dataset_loaded",
        files=[f.name for f in files],
        format=fmt.kind,
        rows=rows,
        train_rows=len(train),
        eval_rows=len(evaluation) if evaluation is not None else 0,
    )
    return LoadedDataset(
        train=train,
        eval=evaluation,
        format=fmt,
        files=tuple(files),
        fingerprint=fingerprint_files(files),
        rows=rows,
    )
