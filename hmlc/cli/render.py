"""Plain terminal tables (no dependency, aligned columns)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["print_table", "format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align_right: Sequence[int] = ()) -> str:
    """Rows of cells as aligned text with a rule under the header."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if i in align_right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out) + "\n"


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align_right: Sequence[int] = (), file: TextIO | None = None
) -> None:
    (file or sys.stdout).write(format_table(header, rows, align_right))
