"""Find the classification head of any classifier.

Order of evidence: an explicit module name (``head=``), the name recorded in the model's
``HeadSpec``, timm's own ``get_classifier()``, and finally one traced forward pass: the last
``Linear`` or 1x1 ``Conv2d`` executed whose output width equals the model's output width.
Auxiliary heads (googlenet, inception) are the other layers of that width that do not run in
eval mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from toolkit.errors import HeadNotFoundError
from toolkit.heads.modules import layer_bias, layer_weight, out_width


@dataclasses.dataclass(frozen=True)
class HeadLocation:
    """Where the head is: dotted ``module`` name, ``kind`` (linear / conv1x1), widths, auxiliaries."""

    module: str
    kind: str
    in_features: int
    out_features: int
    bias: bool
    aux_modules: tuple[str, ...] = ()


def _is_candidate(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1


def _describe(name: str, module: nn.Module) -> HeadLocation:
    if isinstance(module, nn.Sequential) and len(module) and _is_candidate(module[-1]):
        first = next(m for m in module if _is_candidate(m))
        last = module[-1]
        kind = "conv1x1" if isinstance(last, nn.Conv2d) else "linear"
        in_f = int(layer_weight(first).reshape(layer_weight(first).shape[0], -1).shape[1])
        return HeadLocation(name, kind, in_f, out_width(last), layer_bias(last) is not None)
    if isinstance(module, nn.Linear):
        return HeadLocation(name, "linear", module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.Conv2d) and _is_candidate(module):
        return HeadLocation(name, "conv1x1", module.in_channels, module.out_channels, module.bias is not None)
    raise HeadNotFoundError(
        f"module '{name}' is a {type(module).__name__}, not a Linear or 1x1 Conv2d head",
        hint="name the final Linear layer with head",
        param="head",
    )


def candidates(model: nn.Module) -> list[str]:
    """Names of every Linear / 1x1 Conv2d layer: the possible heads.

    Args:
        model: the model.
    """
    return [name for name, m in model.named_modules() if name and _is_candidate(m)]


def _named(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        cands = candidates(model)
        raise HeadNotFoundError(
            f"the model has no module '{name}'",
            hint=f"candidates: {', '.join(cands[-8:]) or 'none'}",
            param="head",
        ) from exc


def _timm_head(model: nn.Module) -> str | None:
    getter = getattr(model, "get_classifier", None)
    if getter is None:
        return None
    head = getter()
    if isinstance(head, tuple):
        head = head[0]
    if not isinstance(head, nn.Module):
        return None
    for name, m in model.named_modules():
        if m is head and name:
            return name
    return None


def _aux_heads(model: nn.Module, head: str, width: int, executed: set[str]) -> tuple[str, ...]:
    aux = []
    for name, m in model.named_modules():
        if name == head or name in executed or not _is_candidate(m):
            continue
        if out_width(m) == width:
            aux.append(name)
    return tuple(aux)


@torch.no_grad()
def _trace(model: nn.Module, example: torch.Tensor) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor]:
    order: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, m in model.named_modules():
        if name and _is_candidate(m):
            handles.append(m.register_forward_hook(lambda mod, i, o, n=name: order.append((n, o))))
    was_training = model.training
    model.eval()
    try:
        out = model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    if not isinstance(out, torch.Tensor):
        raise HeadNotFoundError(f"the model returned {type(out).__name__}, not a tensor of logits")
    return order, out


def locate_head(
    model: nn.Module,
    *,
    head: str | None = None,
    input_shape: Sequence[int] = (1, 3, 224, 224),
) -> HeadLocation:
    """Locate the classification head of ``model``.

    Args:
        model: the model.
        head: a dotted module name that overrides the search (default None: search).
        input_shape: the NCHW shape of the traced forward pass, used when neither the name nor
            timm's contract identifies the head (default (1, 3, 224, 224)).
    """
    if head:
        loc = _describe(head, _named(model, head))
        # Without a traced pass, auxiliary heads are the same-width layers named as such.
        aux = tuple(n for n in _aux_heads(model, head, loc.out_features, set()) if "aux" in n.lower())
        return dataclasses.replace(loc, aux_modules=aux)
    name = _timm_head(model)
    if name is not None:
        loc = _describe(name, model.get_submodule(name))
        return dataclasses.replace(loc, aux_modules=_timm_aux(model, name))
    try:
        order, out = _trace(model, torch.zeros(*input_shape))
    except HeadNotFoundError:
        raise
    except Exception as exc:  # a forward pass of arbitrary user code can fail in any way
        raise HeadNotFoundError(
            f"could not run the model on an input of shape {tuple(input_shape)} to find its head: {exc}",
            hint=f"name the head with head (candidates: {', '.join(candidates(model)[-6:]) or 'none'})",
            param="head",
        ) from exc
    width = out.shape[-1] if out.ndim == 2 else -1
    for name, value in reversed(order):
        if value.ndim >= 2 and value.shape[1] == width:
            loc = _describe(name, model.get_submodule(name))
            executed = {n for n, _ in order}
            return dataclasses.replace(loc, aux_modules=_aux_heads(model, name, width, executed))
    cands = candidates(model)
    raise HeadNotFoundError(
        f"no Linear or 1x1 Conv2d layer produces the model's {tuple(out.shape)} output",
        hint=f"name the head with head; candidate layers: {', '.join(cands[-8:]) or 'none'}",
        param="head",
    )


def _timm_aux(model: nn.Module, name: str) -> tuple[str, ...]:
    getter = getattr(model, "get_classifier", None)
    heads = getter() if getter is not None else None
    if not isinstance(heads, tuple):
        return ()
    names = []
    for extra in heads[1:]:
        for n, m in model.named_modules():
            if m is extra and n and n != name:
                names.append(n)
    return tuple(names)
