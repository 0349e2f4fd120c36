"""A tiny deterministic PNG writer (grey levels), enough for Jacobian sparsity pictures."""
from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def grid_png(cells, cell: int = 18, gap: int = 2) -> bytes:
    """``cells``: rows of grey levels 0..255 (0 black); each becomes a square, with a light grid."""
    rows, cols = len(cells), len(cells[0])
    width, height = cols * (cell + gap) + gap, rows * (cell + gap) + gap
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter: none
        r, in_cell_y = divmod(y - gap, cell + gap) if y >= gap else (-1, cell)
        for x in range(width):
            c, in_cell_x = divmod(x - gap, cell + gap) if x >= gap else (-1, cell)
            inside = 0 <= r < rows and 0 <= c < cols and in_cell_y < cell and in_cell_x < cell
            raw.append(cells[r][c] if inside else 200)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + \
        _chunk(b"IEND", b"")
