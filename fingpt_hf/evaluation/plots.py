"""Confusion-matrix figure for one data set (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from fingpt_hf.io import atomic_write_bytes


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, path: str | os.PathLike
) -> Path:
    """Write a PNG of ``matrix`` (rows gold, columns predicted) with counts in the cells.

    The ``invalid`` row is dropped when empty (it always is: no gold label is invalid), and the
    ``invalid`` column too when no answer was invalid, so score-mode plots are plain 3x3.
    """
    from matplotlib.figure import Figure  # a bare Figure renders with Agg; pyplot (and a GUI) is never used

    rows = [(label, list(row)) for label, row in zip(labels, matrix) if label != "invalid" or any(row)]
    keep = [j for j, label in enumerate(labels) if label != "invalid" or any(r[j] for _, r in rows)]
    data = [[row[j] for j in keep] for _, row in rows]
    col_labels = [labels[j] for j in keep]

    fig = Figure(figsize=(1.3 * len(col_labels) + 1.8, 1.1 * len(rows) + 1.6))
    ax = fig.add_subplot()
    image = ax.imshow(data, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    peak = max((v for row in data for v in row), default=0)
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if peak and value > peak / 2 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())
