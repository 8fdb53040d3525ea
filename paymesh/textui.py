"""Plain-text output for the command line."""

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns; the first row is the header."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)
