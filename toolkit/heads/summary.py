"""A summary of a model's head: what ``rehead inspect`` prints."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.records import Preprocessing


def weights_source(lineage: Sequence[Mapping[str, Any]]) -> str:
    """Where the model's weights started: the first recorded source that is not another model
    directory (``torchvision ResNet18_Weights.IMAGENET1K_V1``, ``random initialisation``).

    Args:
        lineage: the model directory's lineage, oldest step first.
    """
    for step in lineage:
        source = step.get("weights")
        if not isinstance(source, Mapping) or source.get("source") == "model directory":
            continue
        kind = str(source.get("source"))
        detail = source.get("name") or source.get("hub_id") or source.get("path")
        unverified = " (SHA-256 does not match its name)" if source.get("sha256_matches") is False else ""
        return f"{kind} {detail}{unverified}" if detail else kind
    return "not recorded"


def _sizes(prep: Preprocessing) -> dict[str, Any]:
    h, w = prep.input_size
    return {
        "input_size": f"{h}x{w}",
        "resize_size": prep.resize_size if prep.resize_size is not None else "none (resized straight to the input)",
    }


def inspect_model(
    *, model_dir: str | os.PathLike[str] | None = None, arch: str | None = None, head: str | None = None
) -> dict[str, Any]:
    """Head location, widths, strategy, parameter counts and the split under a frozen backbone.

    Args:
        model_dir: the model directory to inspect (default None: ``arch`` instead).
        arch: an architecture, built untrained, when there is no ``model_dir`` (default None).
        head: the head's dotted module name for ``arch`` (default None: located).
    """
    from toolkit.heads.freeze import freeze_backbone, split

    if model_dir is not None:
        from toolkit.models.model_dir import load_model_dir

        loaded = load_model_dir(model_dir)
        model, spec, arch_name = loaded.module, loaded.config.head, loaded.config.arch
        names = loaded.config.class_names
        origin, prep = weights_source(loaded.config.lineage), loaded.config.preprocessing
    else:
        assert arch is not None
        from toolkit.heads.surgery import identity_spec
        from toolkit.models.architectures import default_preprocessing
        from toolkit.models.loading import load_model

        model = load_model(arch)
        prep = default_preprocessing(arch, model)
        spec = identity_spec(model, head=head, input_shape=prep.input_shape(1))
        arch_name, names, origin = arch, (), "random initialisation (the architecture alone)"
    whole = split(model, spec)
    frozen = freeze_backbone(model, spec)
    return {
        "arch": arch_name,
        "weights_source": origin,
        **_sizes(prep),
        "head_module": spec.module,
        "head_kind": spec.kind + (f" + hidden {list(spec.hidden)}" if spec.hidden else ""),
        "in_features": spec.in_features,
        "out_features": spec.num_classes,
        "aux_heads": ", ".join(spec.aux_modules) or "none",
        "strategy": spec.strategy,
        "kept_classes": len(spec.kept_indices),
        "new_classes": len(spec.new_indices),
        "head_params": whole.head,
        "backbone_params": whole.backbone,
        "total_params": whole.total,
        "trainable_with_frozen_backbone": frozen.trainable,
        "frozen_with_frozen_backbone": frozen.frozen,
        "class_names": ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "-",
    }
