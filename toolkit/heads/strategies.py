"""Head strategies: each a small function in a registry by name.

A strategy receives the old output layer and a ``StrategyArgs`` (declared in
``toolkit.heads.options``, importable from here too) and returns the new head module with one
``ClassOrigin`` per output row. Row strategies (``select``, ``pad-*``, ``imprint``)
keep old rows bit-for-bit; ``replace``, ``bottleneck`` and ``mlp`` build a fresh head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from toolkit._args import positive_int
from toolkit._text import listing
from toolkit.errors import InvalidArgumentError
from toolkit.heads.modules import layer_bias, layer_matrix, layer_weight, make_head, make_layer, seeded
from toolkit.heads.options import StrategyArgs
from toolkit.records import ClassOrigin

Result = tuple[nn.Module, tuple[ClassOrigin, ...]]
Strategy = Callable[[nn.Module, str, StrategyArgs], Result]
STRATEGIES: dict[str, Strategy] = {}
#: strategies that keep old rows bit-for-bit and so need ``num_classes`` >= old classes
PAD_STRATEGIES = ("pad-random", "pad-copy", "pad-mean", "imprint")
#: strategies whose head is a multi-layer block on the pooled features
BLOCK_STRATEGIES = ("bottleneck", "mlp")


def register(name: str) -> Callable[[Strategy], Strategy]:
    """Record the decorated strategy in ``STRATEGIES`` under ``name``.

    Args:
        name: the strategy's name (``pad-copy``).
    """
    def deco(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn

    return deco


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _widths(layer: nn.Module) -> tuple[int, int]:
    weight, _ = layer_matrix(layer)
    return int(weight.shape[1]), int(weight.shape[0])


def _build_rows(layer: nn.Module, kind: str, rows: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A new layer of the same kind as ``layer`` holding ``rows`` (out, in) and ``bias``."""
    in_f = rows.shape[1]
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten just below
        new = _like(layer, make_layer(kind, in_f, rows.shape[0], bias=bias is not None))
    with torch.no_grad():
        weight = layer_weight(new)
        weight.copy_(rows.reshape(weight.shape))
        new_bias = layer_bias(new)
        if bias is not None and new_bias is not None:
            new_bias.copy_(bias)
    return new


def _like(layer: nn.Module, new: nn.Module) -> nn.Module:
    """``new`` on the device and dtype of ``layer``."""
    old = layer_weight(layer)
    return new.to(device=old.device, dtype=old.dtype)


def _padded(layer: nn.Module, kind: str, new_rows: torch.Tensor, new_bias: torch.Tensor) -> nn.Module:
    weight, bias = layer_matrix(layer)
    rows = torch.cat([weight, new_rows.to(weight.dtype)], dim=0)
    full_bias = None if bias is None else torch.cat([bias, new_bias.to(bias.dtype)], dim=0)
    return _build_rows(layer, kind, rows, full_bias)


def _num_classes(args: StrategyArgs, name: str) -> int:
    """The new head's class count; ``extend_head`` resolves it, a direct call must give it."""
    if args.num_classes is None:
        raise InvalidArgumentError(f"strategy '{name}' needs num_classes", hint="e.g. 12", param="num_classes")
    return args.num_classes


def _n_new(layer: nn.Module, args: StrategyArgs, name: str) -> int:
    _, old = _widths(layer)
    num_classes = _num_classes(args, name)
    if num_classes <= old:
        raise InvalidArgumentError(
            f"strategy '{name}' adds classes: num_classes must exceed the {old} the head has "
            f"(got {num_classes})",
            hint="use strategy 'select' to keep a subset, or 'replace' for a fresh head",
            param="num_classes",
        )
    return num_classes - old


def _kept(old: int) -> list[ClassOrigin]:
    return [ClassOrigin("kept", i) for i in range(old)]


@register("replace")
def replace(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """A new head of ``num_classes`` rows with the layer's default initialisation (seeded).

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes`` and ``seed``.
    """
    in_f, _ = _widths(layer)
    n = _num_classes(args, "replace")
    with seeded(args.seed):
        new = _like(layer, make_layer(kind, in_f, n, bias=layer_bias(layer) is not None))
    return new, tuple(ClassOrigin("init") for _ in range(n))


@register("select")
def select(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Keep the old rows listed in ``keep``, in that order (truncate / reorder).

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``keep``, the old class indices.
    """
    weight, bias = layer_matrix(layer)
    keep = check_keep(args.keep, int(weight.shape[0]))
    index = torch.tensor(keep, dtype=torch.long)
    rows = weight.index_select(0, index.to(weight.device))
    new_bias = None if bias is None else bias.index_select(0, index.to(bias.device))
    return _build_rows(layer, kind, rows, new_bias), tuple(ClassOrigin("kept", i) for i in keep)


@register("pad-random")
def pad_random(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Old rows kept; new rows drawn from normal(0, ``std``) with ``seed``; new biases zero.

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes`` (more than the layer has), ``std`` and ``seed``.
    """
    n = _n_new(layer, args, "pad-random")
    in_f, old = _widths(layer)
    if not args.std > 0:
        raise InvalidArgumentError(f"std must be positive (got {args.std})", param="std")
    rows = torch.randn(n, in_f, generator=_generator(args.seed)) * args.std
    new = _padded(layer, kind, rows, torch.zeros(n))
    return new, (*_kept(old), *(ClassOrigin("random") for _ in range(n)))


@register("pad-copy")
def pad_copy(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Old rows kept; each new row (and bias) copied from an old row: ``copy_from`` or a seeded draw.

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes`` (more than the layer has), ``copy_from`` (one old index per new row) or ``seed``.
    """
    n = _n_new(layer, args, "pad-copy")
    weight, bias = layer_matrix(layer)
    old = int(weight.shape[0])
    if args.copy_from is not None:
        sources = check_indices(args.copy_from, old, what="copy_from", allow_duplicates=True)
        if len(sources) != n:
            raise InvalidArgumentError(
                f"copy_from lists {len(sources)} old classes for {n} new classes",
                hint="give one old class index per new class",
                param="copy_from",
            )
    else:
        sources = torch.randint(0, old, (n,), generator=_generator(args.seed)).tolist()
    index = torch.tensor(sources, dtype=torch.long, device=weight.device)
    rows = weight.index_select(0, index)
    new_bias = torch.zeros(n) if bias is None else bias.index_select(0, index)
    new = _padded(layer, kind, rows, new_bias)
    return new, (*_kept(old), *(ClassOrigin("copy", int(s)) for s in sources))


@register("pad-mean")
def pad_mean(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Old rows kept; each new row is the mean of the old rows (bias: mean of old biases).

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes`` (more than the layer has).
    """
    n = _n_new(layer, args, "pad-mean")
    weight, bias = layer_matrix(layer)
    rows = weight.float().mean(dim=0, keepdim=True).expand(n, -1)
    new_bias = torch.zeros(n) if bias is None else bias.float().mean().expand(n)
    new = _padded(layer, kind, rows, new_bias)
    return new, (*_kept(int(weight.shape[0])), *(ClassOrigin("mean") for _ in range(n)))


@register("imprint")
def imprint(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Weight imprinting (Qi et al., CVPR 2018): each new row is the L2-normalised mean of the
    L2-normalised penultimate features of its examples, scaled to the mean norm of the old rows.
    New biases are the mean old bias, so new logits start on the old logits' scale.

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes`` (more than the layer has) and ``features`` for every new output index.
    """
    n = _n_new(layer, args, "imprint")
    weight, bias = layer_matrix(layer)
    old = int(weight.shape[0])
    feats = args.features or {}
    missing = [old + i for i in range(n) if old + i not in feats or len(feats[old + i]) == 0]
    if missing:
        raise InvalidArgumentError(
            f"imprint needs example images for every new class; none for output(s) {listing(missing)}",
            hint="give examples_dir one sub-folder of images per new class name",
            param="examples_dir",
        )
    scale = weight.float().norm(dim=1).mean()
    rows = []
    for i in range(n):
        f = feats[old + i].float().reshape(len(feats[old + i]), -1)
        mean = torch.nn.functional.normalize(f, dim=1).mean(dim=0)
        rows.append(torch.nn.functional.normalize(mean, dim=0) * scale)
    new_bias = torch.zeros(n) if bias is None else bias.float().mean().expand(n)
    new = _padded(layer, kind, torch.stack(rows), new_bias)
    return new, (*_kept(old), *(ClassOrigin("imprint") for _ in range(n)))


def _block(layer: nn.Module, kind: str, args: StrategyArgs, hidden: tuple[int, ...], name: str) -> Result:
    in_f, _ = _widths(layer)
    n = _num_classes(args, name)
    # not positive_ints: that drops repeats, and (256, 256) is two layers
    hidden = tuple(positive_int(h, "hidden", example="512,256") for h in hidden)
    if not 0.0 <= args.dropout < 1.0:
        raise InvalidArgumentError(f"dropout must be in [0, 1) (got {args.dropout})", param="dropout")
    with seeded(args.seed):
        head = make_head(kind, in_f, n, hidden=hidden, activation=args.activation, dropout=args.dropout)
    return _like(layer, head), tuple(ClassOrigin("init") for _ in range(n))


@register("bottleneck")
def bottleneck(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """One hidden layer (default width 256) between the pooled features and the classes.

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes``, ``hidden`` (its first width), ``activation``, ``dropout`` and ``seed``.
    """
    hidden = args.hidden[:1] or (256,)
    return _block(layer, kind, args, hidden, "bottleneck")


@register("mlp")
def mlp(layer: nn.Module, kind: str, args: StrategyArgs) -> Result:
    """Any number of hidden layers (default 512, 256) with activation and dropout.

    Args:
        layer: the old output layer (Linear or 1x1 conv).
        kind: its kind, ``linear`` or ``conv1x1``.
        args: reads ``num_classes``, ``hidden``, ``activation``, ``dropout`` and ``seed``.
    """
    return _block(layer, kind, args, args.hidden or (512, 256), "mlp")


def check_indices(
    values: Sequence[object], limit: int, *, what: str, allow_duplicates: bool = False
) -> list[int]:
    """Validate a list of class indices against ``limit`` classes, naming the first bad one.

    Args:
        values: the class indices.
        limit: how many classes there are.
        what: the keyword argument that holds them (``keep``); errors carry it as ``param``.
        allow_duplicates: accept an index listed twice (default False).
    """
    if len(values) == 0:
        raise InvalidArgumentError(f"{what} is empty", hint="list at least one class index", param=what)
    out: list[int] = []
    seen: set[int] = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise InvalidArgumentError(f"{what}: '{v}' is not an integer class index", param=what)
        if not 0 <= v < limit:
            raise InvalidArgumentError(
                f"{what}: index {v} is out of range for a head of {limit} classes",
                hint=f"indices run from 0 to {limit - 1}",
                param=what,
            )
        if v in seen and not allow_duplicates:
            raise InvalidArgumentError(f"{what}: index {v} appears twice", hint="list each class once", param=what)
        seen.add(v)
        out.append(v)
    return out


def check_keep(keep: Sequence[int] | None, limit: int) -> list[int]:
    """``keep`` checked against ``limit`` classes; ``InvalidArgumentError`` when it is None.

    Args:
        keep: the old class indices ``select`` keeps.
        limit: how many classes the old head has.
    """
    if keep is None:
        raise InvalidArgumentError(
            "strategy 'select' needs the old class indices to keep", hint="e.g. keep=[3, 1, 7]", param="keep"
        )
    return check_indices(keep, limit, what="keep")
