"""When parity fails, find where: eager module outputs against the ONNX graph's intermediates.

Eager forward hooks record every module's output (modules called once). A temporary copy of
the ONNX model exposes matched intermediate values as extra graph outputs and ONNX Runtime
runs it. Values are matched to modules through the exporter's scope metadata
(``pkg.torch.onnx.name_scopes``, dynamo exporter) or ``/a/a.b/Op`` node names (TorchScript
exporter), falling back to shape order. The first module whose relative error jumps above the
errors before it is named. Best-effort: anything else reports "could not localise".
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

#: a module "jumps" when its relative error exceeds JUMP × the largest before it and REL_FLOOR
JUMP = 10.0
REL_FLOOR = 1e-4


def _eager_outputs(model: nn.Module, sample: np.ndarray) -> list[tuple[str, np.ndarray]]:
    records: list[tuple[str, np.ndarray]] = []
    calls: dict[str, int] = {}
    handles = []

    def make(name: str) -> Any:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                records.append((name, out.detach().to(torch.float32, copy=True).cpu().numpy()))

        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(make(name)))
    try:
        device = next(model.parameters()).device
        with torch.inference_mode():
            model(torch.from_numpy(sample).to(device))
    finally:
        for h in handles:
            h.remove()
    return [(n, v) for n, v in records if calls.get(n) == 1]


def _scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                names = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            return [str(n) for n in names[1:-1]]
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/") if p][:-1]
        qualified: list[str] = []
        for part in parts:
            prev = qualified[-1] if qualified else ""
            qualified.append(part if not prev or part.startswith(prev + ".") else f"{prev}.{part}")
        return qualified
    return []


def _rel_error(ref: np.ndarray, out: np.ndarray) -> float:
    if ref.shape != out.shape:
        return float("inf")
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    diff = np.abs(ref.astype(np.float64) - out.astype(np.float64))
    if not np.isfinite(diff).all():
        return float("inf")
    return float(diff.max()) / max(scale, 1e-12)


def localise_onnx(
    model: nn.Module, onnx_path: str | os.PathLike[str], sample: np.ndarray, *, threads: int | None = None
) -> dict[str, Any]:
    """Compare intermediate activations of ``model`` and the ONNX file. Returns ``{"status":
    "localised"|"could not localise", "module", "reason", "trace": [{"module", "value",
    "rel_error"}, ...]}``.

    Args:
        model: the eager model.
        onnx_path: the fp32 ``.onnx`` exported from it.
        sample: one small batch, float32 NCHW.
        threads: ONNX Runtime's intra-op threads (default None: its choice).
    """
    import onnx

    from converters.onnx.runner import OrtRunner

    path = Path(onnx_path)
    eager = _eager_outputs(model, sample)
    proto = onnx.load(str(path))
    nodes = list(proto.graph.node)
    last_node: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for scope in _scopes(node):
            last_node[scope] = i
    by_scope = {m: nodes[i].output[0] for m, i in last_node.items() if nodes[i].output}
    method = "scope metadata" if by_scope else "shape order"
    existing = {o.name for o in proto.graph.output}
    wanted = (
        [v for v in by_scope.values() if v]
        if by_scope
        else [o for n in nodes for o in n.output if o and o not in existing]
    )
    wanted = list(dict.fromkeys(v for v in wanted if v not in existing))
    proto.graph.output.extend([onnx.ValueInfoProto(name=v) for v in wanted])
    try:
        data = proto.SerializeToString()
    except ValueError as exc:  # > 2 GiB protobuf limit
        return {"status": "could not localise", "reason": f"model too large to copy: {exc}", "trace": []}
    runner = OrtRunner(path, threads=threads, model_bytes=data, name=f"{path.name} (intermediates)")
    values = runner.run(np.ascontiguousarray(sample, dtype=np.float32))
    trace: list[dict[str, Any]] = []
    cursor = 0
    ordered = [o for n in nodes for o in n.output if o in values]
    for name, ref in eager:
        value: str | None = by_scope.get(name) if by_scope else None
        if value is None and not by_scope:
            # shape order: the closest same-shaped value within the next few after the last match
            window = [(i, v) for i, v in enumerate(ordered[cursor:], cursor) if values[v].shape == ref.shape][
                :8
            ]
            if window:
                i, value = min(window, key=lambda iv: _rel_error(ref, values[iv[1]]))
                cursor = i + 1
        if value is None or value not in values or values[value].shape != ref.shape:
            continue
        trace.append({"module": name, "value": value, "rel_error": _rel_error(ref, values[value])})
    if not trace:
        return {
            "status": "could not localise",
            "reason": "no module output matched an ONNX value",
            "trace": [],
            "method": method,
        }
    worst_before = 1e-7
    for entry in trace:
        err = entry["rel_error"]
        if err > REL_FLOOR and err > JUMP * worst_before:
            return {
                "status": "localised",
                "module": entry["module"],
                "value": entry["value"],
                "method": method,
                "reason": f"relative error jumps to {err:.2e} at module '{entry['module']}' "
                f"(≤ {worst_before:.2e} in every module before it)",
                "trace": trace,
            }
        worst_before = max(worst_before, err)
    return {
        "status": "could not localise",
        "method": method,
        "trace": trace,
        "reason": "no module's intermediate error jumps; the mismatch may come from the graph's last ops",
    }
