"""The ``kubectl get workspace`` table, for ``kaito up`` to show status as it changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kaito.api import printer_columns

__all__ = ("render_table", "workspace_rows")


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = int((now - created).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _cell(ws: Mapping[str, Any], path: str) -> str:
    if path.startswith(".status.conditions[?(@.type=="):
        wanted = path.split('"')[1]
        for cond in (ws.get("status") or {}).get("conditions") or ():
            if cond.get("type") == wanted:
                return str(cond.get("status", ""))
        return ""
    value: Any = ws
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def workspace_rows(
    workspaces: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> list[list[str]]:
    """Header and one row per Workspace, with v1beta1's default printer columns."""
    now = now or datetime.now(UTC)
    columns = [c for c in printer_columns("v1beta1") if not c.get("priority")]
    rows = [["NAME", *(c["name"].upper() for c in columns)]]
    for ws in sorted(workspaces, key=lambda w: w["metadata"]["name"]):
        row = [ws["metadata"]["name"]]
        for column in columns:
            if column["type"] == "date":
                row.append(_age(ws["metadata"].get("creationTimestamp"), now))
            else:
                row.append(_cell(ws, column["jsonPath"]))
        rows.append(row)
    return rows


def render_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
