"""Plots for the HTML report, rendered with matplotlib (Agg) into base64 PNG data URIs.

Titles name the artifact, and artifact names can be long: ``encode`` wraps every title that is
wider than its figure before laying the figure out, and saves with a tight bounding box, so no
text is clipped at the edge of the image. Every figure is at most 6 inches (540 px) wide and grows
in height only with what it shows: the per-class chart of a large head shows its worst classes and
every new one (``per_class_selection``), never a bar per class of a thousand.
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
from validation.report._format import num
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
    """Wrap each axes title that is wider than the figure onto as many lines as it needs.

    Args:
        fig: a matplotlib figure.
    """
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
    """``fig`` as a PNG data URI (titles fitted, tight layout); closes the figure.

    Args:
        fig: a matplotlib figure.
    """
    plt = _pyplot()
    buffer = io.BytesIO()
    fit_titles(fig)
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def error_histogram(name: str, parity: ParityResult) -> str:
    """log10 |Δ| per slice (largest batch size) with each slice's atol marked.

    Args:
        name: the artifact's name, in the title.
        parity: its parity result.
    """
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
    ax.set_xlabel("log10 |artifact − eager| (dashed: atol; an exact 0 is drawn at −12)")
    ax.set_ylabel("values")
    ax.set_title(f"{name}\nabsolute error by class slice (batch {batch.batch_size})", fontsize=10)
    ax.legend(fontsize=8)
    return encode(fig)


#: a head with at most this many classes shows every class, in index order
PER_CLASS_ALL = 40
#: a larger head shows its worst kept classes, this many, beside every new class
PER_CLASS_WORST = 25
#: ...every new class up to this many (a head that adds hundreds shows its worst new ones)
PER_CLASS_NEW = 40


def per_class_values(parity: ParityResult, num_classes: int) -> np.ndarray:
    """Largest |Δ| per class over batch sizes (first output); a NaN/Inf mismatch counts as ``inf``.

    Args:
        parity: the parity result.
        num_classes: the model's number of classes.
    """
    output = next((k for b in parity.batches for k in b.per_class), None)
    values = np.zeros(num_classes)
    for batch in parity.batches:
        if output in batch.per_class:
            row = np.asarray(batch.per_class[output], dtype=np.float64)[:num_classes]
            values[: row.size] = np.fmax(values[: row.size], np.where(np.isnan(row), np.inf, row))
    return values


def per_class_selection(values: np.ndarray, new: set[int]) -> list[int]:
    """The classes the per-class chart shows: all of a small head (index order); else the worst
    ``PER_CLASS_WORST`` kept and every new class (at most ``PER_CLASS_NEW``), worst first.

    Args:
        values: the largest error per class (``per_class_values``).
        new: the indices of the new classes.
    """
    count = len(values)
    if count <= PER_CLASS_ALL:
        return list(range(count))

    def worst(indices: list[int], limit: int) -> list[int]:
        return sorted(indices, key=lambda i: (-values[i], i))[:limit]

    fresh = worst([i for i in range(count) if i in new], PER_CLASS_NEW)
    kept = worst([i for i in range(count) if i not in new], PER_CLASS_WORST)
    return sorted(fresh + kept, key=lambda i: (-values[i], i))


def per_class_error(
    name: str, values: np.ndarray, shown: Sequence[int], class_names: Sequence[str], new: set[int]
) -> str:
    """Largest |Δ| per class for the classes shown, one horizontal bar each on a linear axis from 0
    with its value written beside it; new classes in red, a NaN/Inf mismatch drawn full length,
    hatched.

    Args:
        name: the artifact's name, in the title.
        values: the largest error per class (``per_class_values``).
        shown: the classes to draw (``per_class_selection``).
        class_names: the model's class names.
        new: the indices of the new classes.
    """
    plt = _pyplot()
    picked = np.asarray([values[i] for i in shown], dtype=np.float64)
    finite = picked[np.isfinite(picked)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    lengths = np.where(np.isfinite(picked), picked, top)
    fig, ax = plt.subplots(figsize=(6.0, 0.2 * len(shown) + 1.3))
    rows = np.arange(len(shown))
    colors = [COLORS["new"] if i in new else COLORS["kept"] for i in shown]
    bars = ax.barh(rows, lengths, color=colors, height=0.7)
    for bar, value in zip(bars, picked, strict=True):
        if not np.isfinite(value):
            bar.set_hatch("//")
        ax.annotate("NaN/Inf" if not np.isfinite(value) else num(float(value)), (bar.get_width(), bar.get_y()
                    + bar.get_height() / 2), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)

    def label(i: int) -> str:
        text = str(class_names[i]) if i < len(class_names) else ""
        return _label(text if str(i) in text else f"{i} {text}".strip(), 22)  # the index once

    ax.set_yticks(rows, [label(i) for i in shown], fontsize=7)
    ax.invert_yaxis()  # first class (or worst) at the top
    ax.set_xlim(0, top * 1.25)  # room for the value labels
    ax.set_xlabel("max |artifact − eager| over batch sizes (linear)")
    total, fresh = len(class_names), sum(1 for i in shown if i in new)
    if len(shown) == total:
        what = f"all {total} classes"
    else:
        what = f"worst {len(shown) - fresh} of {total - len(new)} kept, {fresh} of {len(new)} new"
    ax.set_title(f"{name}\nper-class max error: {what} (green kept, red new)", fontsize=10)
    return encode(fig)


def _label(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def latency_distribution(report: ValidationReport, batch: int) -> str:
    """Box plots of every timed run at ``batch``: eager reference and each artifact; an
    inconclusive measurement (too noisy) is drawn in orange and labelled so, with its CV.

    Args:
        report: the validation report.
        batch: the batch size.
    """
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
    """Relative error per matched module in execution order, the jump marked.

    Args:
        name: the artifact's name, in the title.
        loc: the localisation result (``localise_onnx``).
    """
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
    accuracy-aware search tried, with the fp32 graph, the target and the chosen variant marked.

    Args:
        name: the artifact's name, in the title.
        search: the decision's JSON (``Int8Decision.to_json``).
    """
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
    ax.set_ylabel("top-1 agreement with eager,\nall classes (%)")
    ax.set_title(f"{name}\naccuracy-aware INT8: variants tried (dashed: target)", fontsize=10)
    ax.legend(fontsize=7)
    return encode(fig)
