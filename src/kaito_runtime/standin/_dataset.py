"""Write the guide's conversational dataset as a parquet file (``messages`` column).

Runtime layer (imports pyarrow when called). Deterministic: the same rows, the same file bytes
with the same pyarrow version.
"""

from __future__ import annotations

import os
from pathlib import Path

from kaito_runtime.standin._corpus import guide_conversations

__all__ = ("write_guide_dataset",)


def write_guide_dataset(out: str | os.PathLike[str]) -> int:
    """Write the conversations to ``out`` (parquet, atomically); returns the row count."""
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    rows = guide_conversations()
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    table = pa.table({"messages": pa.array(rows, type=pa.list_(message))})
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    pq.write_table(table, scratch, compression="zstd")
    scratch.replace(target)
    return len(rows)
