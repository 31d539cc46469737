"""The model directory: ``model.safetensors`` + ``config.json``, the record every stage reads.

``save_model_dir`` writes both into a staging folder and moves it into place in one rename;
``load_model_dir`` rebuilds the exact module: architecture, head structure from the ``HeadSpec``,
strict weights, hash checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit import _atomic
from toolkit._text import listing
from toolkit.errors import ModelDirError, WeightsMismatchError
from toolkit.records import ModelConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclasses.dataclass
class LoadedModel:
    """A module rebuilt from a model directory, in eval mode, with its record and location."""

    module: nn.Module
    config: ModelConfig
    path: Path


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file.

    Args:
        path: the file.
        chunk: how many bytes are read at a time (default 1 MiB).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of every tensor (tied weights become separate copies).

    Args:
        model: the model.
    """
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def load_weights_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` only if every key and shape matches; name what does not.

    Args:
        model: the model.
        state: the weights, by parameter name.
        source: where they came from, for the error message.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"'{k}': checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch ({len(shapes)}): {listing(shapes, limit=3, sep='; ')}")
    if problems:
        raise WeightsMismatchError(
            f"weights '{source}' do not fit the architecture: {' | '.join(problems)}",
            hint="check arch (and source_num_classes, the source head's class count) against the checkpoint",
            param="arch",
        )
    # Module versions (``_metadata``) are not stored in safetensors; some modules (mnasnet) need them.
    ordered: OrderedDict[str, torch.Tensor] = OrderedDict(state)
    ordered._metadata = getattr(expected, "_metadata", None)  # type: ignore[attr-defined]
    model.load_state_dict(ordered, strict=True)


def save_model_dir(
    model: nn.Module,
    config: ModelConfig,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    extra_files: Mapping[str, bytes] | None = None,
) -> ModelConfig:
    """Write ``model`` and ``config`` as a model directory atomically; returns the saved record
    (with ``weights_sha256`` filled in).

    Args:
        model: the model whose weights are saved.
        config: its record, written as ``config.json``.
        path: the model directory.
        overwrite: replace an existing ``path`` (default False: refused).
        extra_files: more files to write in the directory, name -> content (default none).
    """
    from safetensors.torch import save_file

    with _atomic.output_dir(path, overwrite=overwrite) as stage:
        weights = stage / WEIGHTS_FILE
        state = state_dict_for_saving(model)
        try:
            save_file(state, str(weights), metadata={"format": "pt"})
        except Exception as exc:  # safetensors reports a failed write as its own error (no OSError)
            _reraise_os_error(exc, state, weights)
            raise
        saved = config.replace(weights_sha256=sha256_file(weights))
        (stage / CONFIG_FILE).write_text(saved.dumps(), encoding="utf-8")
        for name, data in (extra_files or {}).items():
            (stage / name).write_bytes(data)
    return saved


def _reraise_os_error(exc: Exception, state: Mapping[str, torch.Tensor], weights: Path) -> None:
    """After safetensors failed to write ``weights``, write the same bytes with Python's own I/O:
    an ``OSError`` then (a full disk, a file-size limit) is raised from ``exc``, so that the
    atomic writer can say what happened; otherwise return and let the caller re-raise ``exc``."""
    from safetensors.torch import save

    try:
        weights.write_bytes(save(dict(state), metadata={"format": "pt"}))
    except OSError as os_error:
        raise os_error from exc
    finally:
        weights.unlink(missing_ok=True)


def read_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read and validate ``config.json`` of a model directory.

    Args:
        path: the model directory.
    """
    folder = Path(path)
    cfg_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelDirError(f"'{folder}' is not a model directory", hint="create one with 'rehead extend'")
    if not cfg_path.is_file():
        raise ModelDirError(f"'{folder}' has no {CONFIG_FILE}", hint="create one with 'rehead extend'")
    try:
        data: Any = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"'{cfg_path}' is not valid JSON: {exc}") from exc
    return ModelConfig.from_json(data)


def build_from_config(config: ModelConfig) -> nn.Module:
    """The architecture with the head structure the record describes, random weights.

    Args:
        config: the model directory's record.
    """
    from toolkit.heads.surgery import apply_head_structure
    from toolkit.models.architectures import build_architecture

    model = build_architecture(config.arch, **dict(config.arch_kwargs))
    if config.head.strategy != "none":
        apply_head_structure(model, config.head)
    return model


def load_model_dir(path: str | os.PathLike[str], *, verify_hash: bool = True) -> LoadedModel:
    """Rebuild the exact module saved in ``path`` (eval mode, CPU).

    Args:
        path: the model directory.
        verify_hash: check the weights against ``weights_sha256`` first (default True).
    """
    from toolkit.models.checkpoint import load_state_dict

    folder = Path(path)
    config = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirError(f"'{folder}' has no {WEIGHTS_FILE}")
    if verify_hash and config.weights_sha256:
        actual = sha256_file(weights)
        if actual != config.weights_sha256:
            raise ModelDirError(
                f"'{weights}' does not match the sha256 in {CONFIG_FILE} "
                f"({actual[:12]} vs {config.weights_sha256[:12]})",
                hint="the weights were changed or damaged after saving; re-create the directory",
            )
    model = build_from_config(config)
    load_weights_strict(model, load_state_dict(weights), str(weights))
    model.eval()
    return LoadedModel(model, config, folder)
