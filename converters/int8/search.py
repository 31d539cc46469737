"""Accuracy-aware, speed-aware INT8: the fastest QDQ graph that meets a top-1 agreement target.

``search_int8`` starts from the all-INT8 graph (ONNX Runtime static QDQ, calibrated once and
cached) and measures its top-1 agreement with eager on held-out images, for all of them and
for the images of the new classes on their own. While a target is missed it moves the most
sensitive nodes back to fp32 (``converters.int8.nodes.sensitivity``: the SQNR drop each node
adds, from ONNX Runtime's ``qdq_loss_debug``), first 1, 2, 4, ... of them, then the fewest
that meet the target by bisection. Then the speed rule, on this machine, in the same run: each
group of the remaining INT8 nodes (op type, depthwise convolutions apart, and the head) is timed
in INT8 and in fp32 side by side, and kept in INT8 only when that is at least ``MIN_GAIN``
faster. Last, the chosen graph is timed against the fp32 graph and the all-INT8 one; unless it
still quantizes a node and is at least ``MIN_GAIN`` faster than fp32, the fp32 graph is what is
written: the result is never slower than the fp32 export. Every variant and the reason for each
fp32 node go into an ``Int8Decision``.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.int8.nodes import (
    SENSITIVITY_IMAGES,
    node_groups,
    quantized_nodes,
    sensitivity,
    units,
    weighted_nodes,
)
from converters.int8.quantize import prepare_int8, quantize_prepared
from converters.int8.record import Fp32Node, GroupTiming, Int8Decision, Int8Targets, Variant, finite
from converters.onnx.ort import open_session
from converters.timing import interleaved_ms
from toolkit.errors import GateFailedError
from toolkit.progress import Progress

#: INT8 must be at least this much faster (fraction of the fp32 time) for a group to stay INT8
MIN_GAIN = 0.03
#: interleaved rounds x calls per round when timing variants against each other (batch 1)
ROUNDS, CALLS = 7, 5
SENSITIVITY_METHOD = (
    f"onnxruntime.quantization.qdq_loss_debug on {SENSITIVITY_IMAGES} calibration images: per node, the drop "
    "in SQNR (dB, fp32 graph vs all-INT8 graph) from its worst activation input to its output"
)


@dataclasses.dataclass(frozen=True)
class Heldout:
    """Held-out model inputs (never calibration images) with their labels and eager's logits.

    ``new_classes``/``kept_classes``: class indices of the head's new and kept rows; the ``new``
    slice is the images labelled with a new class. ``source`` says where they came from.
    """

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray
    new_classes: tuple[int, ...]
    kept_classes: tuple[int, ...]
    source: str

    def masks(self) -> dict[str, np.ndarray]:
        masks = {"all": np.ones(len(self.labels), dtype=bool)}
        for name, classes in (("new", self.new_classes), ("kept", self.kept_classes)):
            mask = np.isin(self.labels, np.asarray(classes, dtype=self.labels.dtype))
            if classes and mask.any():
                masks[name] = mask
        return masks

    def agreement(self, run: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """Top-1 agreement of ``run`` with eager per slice, in batches of 32.

        Args:
            run: ``images -> logits`` of the graph under test.
        """
        got = np.concatenate([run(self.images[i : i + 32]) for i in range(0, len(self.images), 32)])
        same = got.argmax(1) == self.reference.argmax(1)
        return {name: finite(float(same[mask].mean())) for name, mask in self.masks().items()}


class _Search:
    """The state of one search: the prepared graph, the calibration cache, the variants so far."""

    def __init__(self, prepared: Path, work: Path, samples: np.ndarray, heldout: Heldout, *,
                 quantize: Mapping[str, Any], threads: int | None, steps: Progress) -> None:
        self.prepared, self.work, self.samples, self.heldout = prepared, work, samples, heldout
        self.quantize_args, self.threads, self.steps = dict(quantize), threads, steps
        self.cache = work / "calibration.json"
        self.files: dict[frozenset[str], Path] = {}
        self.results: dict[frozenset[str], Variant] = {}
        self.example = np.ascontiguousarray(heldout.images[:1])

    def build(self, exclude: frozenset[str], name: str, targets: Int8Targets, *, measure: bool = True) -> Variant:
        """Quantize with ``exclude`` in fp32 (once per set) and, with ``measure``, its agreement.

        Args:
            exclude: the nodes to leave in fp32.
            name: the variant's name, for the record and the progress.
            targets: what its agreement is judged against.
            measure: measure its agreement (default True); False: only quantize (a speed-rule trial).
        """
        if exclude not in self.files:
            path = self.work / f"variant-{len(self.files)}.onnx"
            quantize_prepared(self.prepared, path, self.samples, exclude=sorted(exclude), cache=self.cache,
                              **self.quantize_args)
            self.files[exclude] = path
            self.results[exclude] = Variant(name, len(exclude), {}, None)
        variant = self.results[exclude]
        if measure and variant.met is None:
            agreement = self.heldout.agreement(self.runner(self.files[exclude]))
            variant = dataclasses.replace(variant, agreement=agreement, met=targets.met(agreement))
            self.results[exclude] = variant
            self.steps.message(f"{variant.name}: {len(exclude)} nodes in fp32, agreement "
                               + ", ".join(f"{k} {v:.1%}" for k, v in agreement.items()))
        return variant

    @property
    def runtime(self) -> str:
        """Where the model will run, so where agreement and speed are measured: OpenVINO for the
        ``openvino`` target (a node group ONNX Runtime does not speed up may be fast there, and
        the other way round), else ONNX Runtime."""
        return "openvino" if self.quantize_args.get("target") == "openvino" else "onnxruntime"

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        """``images -> logits`` of the graph at ``path`` on the target's runtime.

        Args:
            path: the ``.onnx`` graph.
        """
        if self.runtime == "openvino":
            from converters.openvino.runner import OpenVinoRunner

            ov = OpenVinoRunner(path, threads=self.threads, precision="int8")
            ov.load()
            return lambda x: ov.run(np.ascontiguousarray(x))[ov.output_names[0]]
        session = open_session(path, threads=self.threads, spinning=False)
        name_in = session.get_inputs()[0].name
        return lambda x: np.asarray(session.run(None, {name_in: x})[0])

    def time(self, paths: Mapping[str, Path]) -> dict[str, float]:
        """Batch-1 median latency (ms) of each model on the target's runtime, timed side by side
        in interleaved rounds.

        Args:
            paths: the graphs to time, by name.
        """
        calls: dict[str, Callable[[], object]] = {
            key: functools.partial(self.runner(path), self.example) for key, path in paths.items()
        }
        return interleaved_ms(calls, ROUNDS, CALLS)


def search_int8(
    fp32: Path,
    dst: Path,
    samples: np.ndarray,
    heldout: Heldout,
    targets: Int8Targets,
    *,
    head_module: str,
    work: Path,
    method: str = "minmax",
    input_name: str = "images",
    external: str | None = None,
    target: str = "cpu",
    threads: int | None = None,
    speed: bool = True,
    steps: Progress | None = None,
) -> Int8Decision:
    """Write to ``dst`` the fastest graph that meets ``targets`` (module docstring); return the decision.

    Args:
        fp32: the checked fp32 graph.
        dst: the ``.onnx`` to write.
        samples: the calibration inputs.
        heldout: the held-out images, labels and eager's logits that agreement is measured on.
        targets: what to meet; none met within ``max_fp32_nodes``: ``GateFailedError`` (exit 1) naming the best reached.
        head_module: the head's module name (its nodes are a speed group of their own).
        work: a scratch folder.
        method: the calibration method (default ``minmax``).
        input_name: the graph's input name (default ``images``).
        external: the external-data file name of ``dst``; None (the default): all in one file.
        target: the INT8 target, ``INT8_TARGETS`` (default ``cpu``).
        threads: the runtime's threads for agreement and timing (default None: its choice).
        speed: run the speed rule (default True); False: accuracy only (fp32 is still compared last).
        steps: the progress to report on (default: a new ``Progress``).
    """
    start = time.perf_counter()
    steps = steps or Progress("int8 search")
    prepared = prepare_int8(fp32, work, external=external)
    search = _Search(prepared, work, samples, heldout, threads=threads, steps=steps,
                     quantize={"method": method, "input_name": input_name, "external": external, "target": target})
    with steps.step("int8 search", "all-INT8 first"):
        base = search.build(frozenset(), "all-int8", targets)
    ops = quantized_nodes(search.files[frozenset()])
    groups = node_groups(prepared, ops, head_module)
    drops: dict[str, float] = {}
    exclude: frozenset[str] = frozenset()
    if not base.met:
        with steps.step("sensitivity", SENSITIVITY_METHOD.split(":")[0]):
            drops = sensitivity(prepared, search.files[frozenset()], samples, input_name=input_name, work=work)
        with steps.step("int8 search", "most sensitive nodes back to fp32"):
            exclude = _fewest(search, _prefixes(drops, units(prepared, ops), targets.max_fp32_nodes), targets)
    reasons = dict.fromkeys(exclude, "sensitivity")
    timings: list[GroupTiming] = []
    if speed:
        accurate = exclude
        with steps.step("speed rule", "each group in INT8 vs fp32, side by side"):
            exclude = _speed_rule(search, exclude, groups, targets, timings, reasons)
        if not search.build(exclude, "speed rule", targets).met:  # more fp32, yet worse: keep what met it
            exclude = accurate
            reasons = {n: r for n, r in reasons.items() if n in accurate}
    keys = {f"v{i}": exclude_set for i, exclude_set in enumerate(search.files)}
    with steps.step("final timing", "fp32 and every variant, interleaved"):
        timed = search.time({"fp32": fp32, **{k: search.files[e] for k, e in keys.items()}})
    by_set = {e: timed[k] for k, e in keys.items()}
    latency = {"fp32": timed["fp32"], "all_int8": by_set[frozenset()], "chosen": by_set[exclude]}
    # INT8 only where it pays: some node still quantized, and at least MIN_GAIN faster than fp32
    still_int8 = len(ops) > len(exclude)
    chosen = "int8" if still_int8 and latency["chosen"] < latency["fp32"] * (1 - MIN_GAIN) else "fp32"
    agreement = dict(search.build(exclude, "chosen", targets).agreement)
    if chosen == "fp32":
        shutil.copyfile(fp32, dst)
        if external is not None:  # the weights travel with the graph
            shutil.copyfile(fp32.parent / external, dst.parent / external)
        agreement = dict.fromkeys(agreement, 1.0)
        reasons = {n: reasons.get(n, "fp32 chosen") for n in ops}
        latency["chosen"] = latency["fp32"]
    else:
        shutil.copyfile(search.files[exclude], dst)
    variants = tuple(dataclasses.replace(v, latency_ms=finite(by_set[e])) for e, v in search.results.items())
    head_nodes = sorted(n for n, g in groups.items() if g == "head")
    return Int8Decision(
        targets=targets,
        met=True,
        chosen=chosen,
        agreement=agreement,
        latency_ms={k: finite(v) for k, v in latency.items()},
        fp32_nodes=tuple(
            Fp32Node(n, ops.get(n, "?"), groups.get(n, "?"), r, drops.get(n)) for n, r in sorted(reasons.items())
        ),
        quantized_nodes=len(ops) - len(reasons),
        head={"nodes": head_nodes, "quantized": chosen == "int8" and not any(n in reasons for n in head_nodes),
              "reason": next((reasons[n] for n in head_nodes if n in reasons), None)},
        groups=tuple(timings),
        variants=variants,
        heldout={"source": heldout.source, "images": len(heldout.labels),
                 **{f"{k}_images": int(m.sum()) for k, m in heldout.masks().items() if k != "all"}},
        sensitivity_method=SENSITIVITY_METHOD if drops else "not needed: all-INT8 met the targets",
        search_seconds=round(time.perf_counter() - start, 1),
        runtime=search.runtime,
    )


def _prefixes(
    drops: Mapping[str, float], unit: Mapping[str, Sequence[str]], limit: int | None
) -> list[frozenset[str]]:
    """The candidate fp32 sets, growing: the units (``int8_nodes.units``) of the 1, 2, 3, ... most
    sensitive nodes, each set at most ``limit`` nodes (None: no limit)."""
    sets: list[frozenset[str]] = []
    current: frozenset[str] = frozenset()
    for node in sorted(drops, key=lambda n: (-drops[n], n)):
        grown = current | frozenset(unit.get(node, (node,)))
        if grown == current:
            continue
        if limit is not None and len(grown) > limit:
            break
        sets.append(grown)
        current = grown
    return sets


def _fewest(search: _Search, sets: Sequence[frozenset[str]], targets: Int8Targets) -> frozenset[str]:
    """The first of the growing candidate ``sets`` that meets ``targets``: 1, 2, 4, ... of them
    tried, then bisection between the last that missed and the first that met."""
    low, high = 0, None  # sets[low - 1] known to miss; sets[high - 1] known to meet
    k = 1
    limit = len(sets)
    while k <= limit:
        if search.build(sets[k - 1], f"top-{k} fp32", targets).met:
            high = k
            break
        low = k
        k = limit if k < limit and 2 * k > limit else 2 * k
    if high is None:
        best = max(search.results.values(), key=lambda v: (v.met, v.agreement.get("all", 0.0)))
        reached = ", ".join(f"{s} {a:.2%}" for s, a in best.agreement.items())
        raise GateFailedError(
            f"INT8 misses the agreement target (all {targets.min_agreement:.2%}"
            + (f", new {targets.new_class_min_agreement:.2%}" if targets.new_class_min_agreement else "")
            + f") with up to {targets.max_fp32_nodes if targets.max_fp32_nodes is not None else len(sets[-1])}"
            f" nodes in fp32; best reached: {reached} "
            f"with {best.fp32_nodes} in fp32",
            hint="allow more nodes in fp32 (--max-fp32-nodes), lower --min-agreement, calibrate on more images "
            "(--calib-samples) or another --calib-method, or export fp32/fp16",
            param="min_agreement",
        )
    while high - low > 1:
        mid = (low + high) // 2
        if search.build(sets[mid - 1], f"top-{mid} fp32", targets).met:
            high = mid
        else:
            low = mid
    return sets[high - 1]


def _speed_rule(search: _Search, exclude: frozenset[str], groups: Mapping[str, str], targets: Int8Targets,
                timings: list[GroupTiming], reasons: dict[str, str]) -> frozenset[str]:
    """Each group still in INT8 goes to fp32 unless INT8 is at least ``MIN_GAIN`` faster."""
    members: dict[str, list[str]] = {}
    for node, group in groups.items():
        if node not in exclude:
            members.setdefault(group, []).append(node)
    weighted = weighted_nodes(search.prepared, groups)
    for group in sorted(members, key=lambda g: (-len(members[g]), g)):
        if len(members[group]) == 1 and group != "head" and members[group][0] not in weighted:
            continue  # one node without weights (a Shape, a Reshape): not worth a trial
        trial = exclude | frozenset(members[group])
        # only timed: its agreement is measured once, on the graph the rule ends with
        search.build(trial, f"{group} in fp32", targets, measure=False)
        ms = search.time({"int8": search.files[exclude], "fp32": search.files[trial]})
        keep = ms["int8"] < ms["fp32"] * (1 - MIN_GAIN)
        timings.append(GroupTiming(group, len(members[group]), finite(ms["int8"]), finite(ms["fp32"]), keep))
        search.steps.message(f"{group} ({len(members[group])} nodes): INT8 {ms['int8']:.2f} ms, fp32 "
                             f"{ms['fp32']:.2f} ms -> {'INT8' if keep else 'fp32'}")
        if not keep:
            exclude = trial
            reasons.update(dict.fromkeys(members[group], "no speed gain"))
    return exclude
