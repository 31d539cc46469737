"""Plots for the HTML report, rendered with matplotlib (Agg) into base64 PNG data URIs.

Titles name the artifact, and artifact names can be long: ``encode`` wraps every title that is
wider than its figure before laying the figure out, and saves with a tight bounding box, so no
text is clipped at the edge of the image.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from converters.compare import ParityResult
from toolkit.errors import require
from validation.result import ValidationReport

COLORS = {"all": "#4c72b0", "kept": "#55a868", "new": "#c44e52"}
#: fill and label colours of an inconclusive latency measurement (the HTML report's orange)
NOISY = "#f6c87a"
NOISY_TEXT = "#b26a00"


def _pyplot() -> Any:
    matplotlib: Any = require("matplotlib", purpose="the HTML report's plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fit_titles(fig: Any) -> None:
    """Wrap each axes title that is wider than the figure onto as many lines as it needs."""
    renderer = fig.canvas.get_renderer()
    limit = fig.bbox.width * 0.95
    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        width = title.get_window_extent(renderer).width
        if text and width > limit:
            longest = max(len(line) for line in text.splitlines())
            chars = max(16, int(longest * limit / width))
            lines = [part for line in text.splitlines() for part in textwrap.wrap(line, chars) or [""]]
            title.set_text("\n".join(lines))


def encode(fig: Any) -> str:
    """``fig`` as a PNG data URI (titles fitted, tight layout); closes the figure."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fit_titles(fig)
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def error_histogram(name: str, parity: ParityResult) -> str:
    """log10 |Δ| per slice (largest batch size) with each slice's atol marked."""
    plt = _pyplot()
    batch = max(parity.batches, key=lambda b: b.batch_size)
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for slice_name, errors in batch.abs_errors.items():
        logs = np.log10(np.maximum(errors, 1e-12)) if errors.size else np.array([-12.0])
        ax.hist(
            logs, bins=40, alpha=0.55, label=f"{slice_name} ({errors.size})", color=COLORS.get(slice_name)
        )
        atol = parity.tolerance.atol_for(slice_name)
        if atol:
            ax.axvline(np.log10(atol), color=COLORS.get(slice_name, "k"), linestyle="--", linewidth=1)
    ax.set_xlabel("log10 |artifact − eager| (dashed: atol)")
    ax.set_ylabel("values")
    ax.set_title(f"{name}\nabsolute error by class slice (batch {batch.batch_size})", fontsize=10)
    ax.legend(fontsize=8)
    return encode(fig)


def per_class_error(name: str, parity: ParityResult, class_names: Sequence[str], new: set[int]) -> str:
    """Largest |Δ| per class over batch sizes, new classes in red."""
    plt = _pyplot()
    output = next((k for b in parity.batches for k in b.per_class), None)
    values = np.zeros(len(class_names))
    for batch in parity.batches:
        if output in batch.per_class:
            row = np.asarray(batch.per_class[output], dtype=np.float64)
            values = np.fmax(values, np.where(np.isnan(row), np.inf, row))
    finite_max = float(values[np.isfinite(values)].max()) if np.isfinite(values).any() else 1.0
    shown = np.where(np.isfinite(values), values, finite_max * 10 or 1.0)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.28 * len(class_names) + 2), 3.0))
    colors = [COLORS["new"] if i in new else COLORS["kept"] for i in range(len(class_names))]
    ax.bar(range(len(class_names)), np.maximum(shown, 1e-12), color=colors)
    ax.set_yscale("log")
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)), [str(c)[:12] for c in class_names], rotation=90, fontsize=7)
    ax.set_ylabel("max |Δ|")
    ax.set_title(f"{name}\nper-class max error (green kept, red new)", fontsize=10)
    return encode(fig)


def _label(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def latency_distribution(report: ValidationReport, batch: int) -> str:
    """Box plots of every timed run at ``batch``: eager reference and each artifact; an
    inconclusive measurement (too noisy) is drawn in orange and labelled so, with its CV."""
    plt = _pyplot()
    labels, data, noisy = [], [], []
    entries = [("eager-fp32", report.reference_latency.get(batch))]
    entries += [(a.name, a.latency.get(batch)) for a in report.artifacts]
    for name, stats in entries:
        if stats is not None and stats.samples_ms:
            labels.append(_label(name) + ("" if stats.conclusive else f"\ninconclusive (CV {stats.cv:.2f})"))
            data.append(np.asarray(stats.samples_ms))
            noisy.append(not stats.conclusive)
    fig, ax = plt.subplots(figsize=(6.0, 0.6 * max(len(data), 2) + 1.2))
    if data:
        boxes = ax.boxplot(data, vert=False, showfliers=True, flierprops={"markersize": 2}, patch_artist=True)
        for patch, bad in zip(boxes["boxes"], noisy, strict=True):
            patch.set_facecolor(NOISY if bad else "#ffffff")
        ax.set_yticks(range(1, len(labels) + 1), labels, fontsize=8)
        for tick, bad in zip(ax.get_yticklabels(), noisy, strict=True):
            tick.set_color(NOISY_TEXT if bad else "black")
        ax.set_xscale("log")
    ax.set_xlabel("milliseconds per batch (log)")
    title = f"latency distribution, batch {batch}"
    if any(noisy):
        title += "\norange: inconclusive (too noisy to trust)"
    ax.set_title(title, fontsize=10)
    return encode(fig)


def localisation_trace(name: str, loc: dict[str, Any]) -> str | None:
    """Relative error per matched module in execution order, the jump marked."""
    trace = loc.get("trace") or []
    if not trace:
        return None
    plt = _pyplot()
    errors = [max(float(t["rel_error"]), 1e-12) if np.isfinite(t["rel_error"]) else 1.0 for t in trace]
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.plot(range(len(errors)), errors, marker="o", markersize=3)
    ax.set_yscale("log")
    culprit = loc.get("module")
    for i, t in enumerate(trace):
        if t["module"] == culprit:
            ax.axvline(i, color=COLORS["new"], linestyle="--")
            ax.annotate(str(culprit), (i, errors[i]), fontsize=8, color=COLORS["new"], ha="right", va="top")
    ax.set_xlabel("module (execution order)")
    ax.set_ylabel("relative error")
    ax.set_title(f"{name}\nintermediate activations vs eager", fontsize=10)
    return encode(fig)


def int8_variants(name: str, search: dict[str, Any]) -> str:
    """Top-1 agreement (all held-out images) against batch-1 latency for every INT8 variant the
    accuracy-aware search tried, with the fp32 graph, the target and the chosen variant marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    # speed-rule trials are only timed (no agreement): they have no place on this plot
    variants = [v for v in search.get("variants", []) if v.get("latency_ms") is not None and v.get("agreement")]
    met = [v for v in variants if v.get("met")]
    missed = [v for v in variants if not v.get("met")]
    for group, colour, label in ((met, COLORS.get("kept", "tab:green"), "meets target"),
                                 (missed, COLORS.get("new", "tab:red"), "misses target")):
        if group:
            ax.scatter([v["latency_ms"] for v in group], [100 * v["agreement"].get("all", 0) for v in group],
                       color=colour, label=label, s=28)
    lat = search.get("latency_ms", {})
    if lat.get("fp32"):
        ax.scatter([lat["fp32"]], [100.0], marker="s", color="k", label="fp32 graph", s=36)
    if lat.get("chosen"):
        ax.scatter([lat["chosen"]], [100 * search.get("agreement", {}).get("all", 0)], marker="*", s=160,
                   facecolors="none", edgecolors="k", label=f"chosen ({search.get('chosen')})")
    target = search.get("targets", {}).get("min_agreement")
    if target:
        ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("batch-1 latency (ms, timed side by side)")
    ax.set_ylabel("top-1 agreement with eager (%)")
    ax.set_title(f"{name}\naccuracy-aware INT8: variants tried (dashed: target)", fontsize=10)
    ax.legend(fontsize=7)
    return encode(fig)
