"""The metrics history of a run as files: ``metrics.json``, ``metrics.csv`` and ``curves.png``.

One record per epoch: ``epoch`` (1-based, as the console shows it), ``phase``, ``train_loss`` (with label smoothing),
``train_top1``, ``val_loss`` (plain cross-entropy), ``val_top1``, ``lr_head`` and
``lr_backbone`` (at the end of the epoch; empty when frozen), ``images_per_s`` (training
throughput) and ``seconds`` (wall time of the epoch's training steps).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = (
    "epoch",
    "phase",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "lr_head",
    "lr_backbone",
    "images_per_s",
    "seconds",
)

METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"


def metrics_json(summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> bytes:
    """``metrics.json``: the run's summary and its epoch records, UTF-8 bytes.

    Args:
        summary: the run's summary fields.
        history: the epoch records, in order.
    """
    return (json.dumps({**summary, "epochs": [dict(r) for r in history]}, indent=2) + "\n").encode("utf-8")


def metrics_csv(history: Sequence[Mapping[str, Any]]) -> bytes:
    """``metrics.csv``: one row per epoch record (``COLUMNS``), UTF-8 bytes.

    Args:
        history: the epoch records, in order.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in history:
        writer.writerow(["" if record.get(c) is None else record.get(c) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8")


def curves_png(history: Sequence[Mapping[str, Any]], *, title: str = "fine-tuning") -> bytes | None:
    """Loss, top-1 and learning-rate curves as PNG bytes; ``None`` (with a warning) without matplotlib.

    Args:
        history: the epoch records, in order.
        title: the figure's title (default ``fine-tuning``).
    """
    try:
        import matplotlib
    except ImportError:
        warnings.warn('matplotlib is not installed: no curves.png (pip install "rehead[cpu]")', stacklevel=2)
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    try:
        axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
        axes[0].plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
        axes[0].set_title("loss")
        axes[1].plot(epochs, [r["train_top1"] for r in history], "o-", label="train")
        axes[1].plot(epochs, [r["val_top1"] for r in history], "o-", label="val")
        axes[1].set_title("top-1")
        for part in ("head", "backbone"):
            values = [r.get(f"lr_{part}") for r in history]
            axes[2].plot(epochs, [float("nan") if v is None else v for v in values], "o-", label=part)
        axes[2].set_title("learning rate (end of epoch)")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        frozen = [r["epoch"] for r in history if r["phase"] == "head"]
        if frozen:
            for ax in axes:
                ax.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="grey", alpha=0.12)
        fig.suptitle(title)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=90)
        return out.getvalue()
    finally:
        plt.close(fig)


def history_files(
    summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]], *, plot: bool = True
) -> dict[str, bytes]:
    """File name -> content of the metrics files (the plot only if ``plot`` and matplotlib).

    Args:
        summary: the run's summary fields (its ``title`` titles the plot).
        history: the epoch records, in order.
        plot: draw the curves (default True).
    """
    files = {METRICS_JSON: metrics_json(summary, history), METRICS_CSV: metrics_csv(history)}
    if plot and history:
        png = curves_png(history, title=str(summary.get("title", "fine-tuning")))
        if png is not None:
            files[CURVES_PNG] = png
    return files
