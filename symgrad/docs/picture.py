"""The worked Jacobian of a 1-D op, drawn for a reader: an SVG grid (the Markdown documents) and a
shaded LaTeX table (the LaTeX ones), rows labelled i and columns j, each nonzero entry shaded and
written in its cell."""
from __future__ import annotations

from xml.sax.saxutils import escape

import sympy as sp

from ..printing.latex import tex

CELL = 40  # pixels per cell side in the SVG


def _svg_text(entry) -> str:
    """An entry as SVG text: ``w_{2}`` as w with a subscript 2; products and sums as they print."""
    if isinstance(entry, sp.Symbol) and "_" in entry.name:
        stem, sub = entry.name.split("_", 1)
        return f'{escape(stem)}<tspan dy="5" font-size="11">{escape(sub)}</tspan>'
    return escape(str(entry))


def jacobian_svg(matrix: sp.Matrix, row: str = "i", col: str = "j") -> str:
    """The matrix as an SVG picture: a labelled grid, nonzero cells grey with their entry."""
    rows, cols = matrix.shape
    left, top = 2 * CELL, 2 * CELL
    width, height = left + cols * CELL + CELL // 2, top + rows * CELL + CELL // 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="serif" font-size="16" text-anchor="middle">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + cols * CELL / 2:g}" y="{CELL * 0.7:g}" font-style="italic">{col} →</text>',
           f'<text x="{CELL * 0.6:g}" y="{top + rows * CELL / 2:g}" font-style="italic">{row} ↓</text>']
    for j in range(cols):
        out.append(f'<text x="{left + (j + 0.5) * CELL:g}" y="{top - CELL * 0.3:g}">{j}</text>')
    for i in range(rows):
        y = top + i * CELL
        out.append(f'<text x="{left - CELL * 0.4:g}" y="{y + CELL * 0.62:g}">{i}</text>')
        for j in range(cols):
            entry = matrix[i, j]
            x = left + j * CELL
            fill = "#d0d0d0" if entry != 0 else "white"
            out.append(f'<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="#808080"/>')
            if entry != 0:
                out.append(f'<text x="{x + CELL / 2:g}" y="{y + CELL * 0.62:g}">{_svg_text(entry)}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def jacobian_table(matrix: sp.Matrix, row: str = "i", col: str = "j") -> str:
    """The matrix as a LaTeX table (colortbl): row and column numbers, nonzero cells shaded."""
    rows, cols = matrix.shape
    head = " & ".join(f"${j}$" for j in range(cols))
    lines = [r"\begin{tabular}{c|" + "c" * cols + "}",
             f"${row} \\downarrow \\;\\; {col} \\rightarrow$ & {head} \\\\ \\hline"]
    for i in range(rows):
        cells = [r"\cellcolor{gray!25}$%s$" % tex(matrix[i, j]) if matrix[i, j] != 0 else "$0$" for j in range(cols)]
        lines.append(f"${i}$ & " + " & ".join(cells) + r" \\")
    return "\n".join(lines + [r"\end{tabular}"])
