"""Pretrained weights by name: torchvision's weights API and timm's Hugging Face hub checkpoints.

Every download goes through the libraries' own code and caches, never ours: torch hub's
``load_state_dict_from_url`` (via ``weights.get_state_dict``, which checks the SHA-256 prefix in
the file name while it downloads) and ``huggingface_hub``'s cache (via ``hf_hub_download``). A
file already in either cache is used without any network access. What comes with the weights
(where they came from, the class names, the preprocessing they were trained with, builder
arguments they need) is returned as a :class:`WeightsInfo` for ``config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import re
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from toolkit.errors import CorruptCheckpointError, InvalidArgumentError, WeightsUnavailableError
from toolkit.records import Preprocessing

#: suffixes that make ``weights`` a file path even when the file does not exist (yet)
WEIGHTS_FILE_SUFFIXES = (".safetensors", ".pt", ".pth")
#: seconds one socket operation may wait while downloading; keeps an offline failure short
DOWNLOAD_TIMEOUT_S = 10.0

RANDOM_INITIALISATION: Mapping[str, Any] = {"source": "random initialisation"}


class RandomInitialisationWarning(UserWarning):
    """A model starts from a random backbone although no one said so (filter it to silence it)."""


class UnverifiedWeightsWarning(UserWarning):
    """A cached weights file does not match the SHA-256 prefix in its name (loaded anyway)."""


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
    """What came with a source model's weights.

    ``source`` is the lineage record of where they came from (``{"source": "torchvision", ...}``,
    ``timm``, ``file`` or ``random initialisation``); ``class_names`` and ``preprocessing`` are
    the weights' own (``None`` when they bring none); ``arch_kwargs`` are builder arguments the
    weights need (googlenet's ``transform_input``), recorded so the model directory rebuilds the
    same module.
    """

    source: Mapping[str, Any]
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing | None = None
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def is_weights_file(weights: str | os.PathLike[str]) -> bool:
    """True if ``weights`` names a file (it exists, or has a weights-file suffix), not a weights name.

    Args:
        weights: a weights file or a weights name.
    """
    path = Path(weights)
    return path.exists() or path.suffix.lower() in WEIGHTS_FILE_SUFFIXES


def distinct_names(categories: Sequence[str]) -> tuple[str, ...]:
    """``categories`` with repeats made distinct (ImageNet has two 'crane' and two 'maillot').

    Args:
        categories: the class names, in order.
    """
    seen: dict[str, int] = {}
    names = []
    for c in categories:
        seen[c] = seen.get(c, 0) + 1
        names.append(c if seen[c] == 1 else f"{c}_{seen[c]}")
    return tuple(names)


# --- torchvision ------------------------------------------------------------------------------
def torchvision_weights(arch: str, name: str) -> Any:
    """The ``WeightsEnum`` member ``name`` (``IMAGENET1K_V1``, ``DEFAULT`` or the full
    ``ResNet18_Weights.IMAGENET1K_V1``) of the torchvision builder ``arch``.

    Args:
        arch: the torchvision builder (``resnet18``).
        name: the member's name.
    """
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as exc:
        raise InvalidArgumentError(
            f"'{arch}' has no torchvision weights to name", hint="give a weights file instead", param="weights"
        ) from exc
    prefix, _, member = name.rpartition(".")
    valid = ", ".join(enum.__members__)
    if prefix and prefix != enum.__name__:
        raise InvalidArgumentError(
            f"weights '{name}' are not for {arch} (its weights are {enum.__name__})",
            hint=f"one of {valid}",
            param="weights",
        )
    if member not in enum.__members__:
        raise InvalidArgumentError(
            f"unknown weights '{name}' for {arch}", hint=f"one of {valid} (or a weights file)", param="weights"
        )
    return enum[member]


def torchvision_cache_path(weights: Any) -> Path:
    """Where torch hub keeps (and looks for) the file of ``weights``: ``<hub dir>/checkpoints/<name>``.

    Args:
        weights: a torchvision ``WeightsEnum`` member.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def torchvision_preprocessing(weights: Any) -> Preprocessing:
    """The evaluation transform of ``weights`` (``weights.transforms()``) as a record.

    Args:
        weights: a torchvision ``WeightsEnum`` member.
    """
    transform = weights.transforms()
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    mode = getattr(transform.interpolation, "value", transform.interpolation)
    return Preprocessing(
        input_size=(crop, crop),
        mean=tuple(float(v) for v in transform.mean),
        std=tuple(float(v) for v in transform.std),
        interpolation=str(mode),
        resize_size=resize,
    )


def _torchvision_arch_kwargs(arch: str, weights: Any) -> dict[str, Any]:
    """Builder arguments torchvision sets when it loads ``weights`` itself (see its builders)."""
    if arch in ("googlenet", "inception_v3"):
        return {"transform_input": True}  # the weights expect the input re-normalised inside the model
    min_size = weights.meta.get("min_size")
    if arch.startswith("vit_") and min_size and min_size[0] != 224:
        return {"image_size": int(min_size[0])}
    return {}


# Old densenet checkpoints name layers 'norm.1'; torchvision's densenet builder renames them too.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket wait (urllib has none by default), restoring the previous default."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else min(previous, seconds))
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_torchvision_weights(
    arch: str, name: str, *, progress: bool = False
) -> tuple[dict[str, torch.Tensor], WeightsInfo]:
    """The state dict of torchvision weights ``name`` for ``arch`` and what comes with them.

    A file in torch hub's cache is loaded as it is; torch hub checks the SHA-256 prefix in the
    file name only when it downloads, so the cached file is hashed here and a mismatch is
    warned about and recorded (``sha256_matches``). Otherwise the file is downloaded by torch
    hub (``check_hash=True``), each socket wait bounded by ``DOWNLOAD_TIMEOUT_S`` seconds;
    offline that raises ``WeightsUnavailableError`` naming the URL and the cache path.

    Args:
        arch: the torchvision builder (``resnet18``).
        name: the weights, as ``torchvision_weights`` takes them.
        progress: show torch hub's download bar on stderr (default False).
    """
    from toolkit.models.checkpoint import check_finite
    from toolkit.models.model_dir import sha256_file

    weights = torchvision_weights(arch, name)
    full_name = repr(weights)  # 'ResNet18_Weights.IMAGENET1K_V1', also for DEFAULT
    cached = torchvision_cache_path(weights)
    found = torch.hub.HASH_REGEX.search(cached.name)
    prefix = found.group(1) if found else None
    downloaded = not cached.exists()
    # torch hub announces downloads on stdout, which belongs to the command's output.
    with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                state = weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
        except OSError as exc:  # URLError, socket timeouts, refused connections
            raise WeightsUnavailableError(
                f"cannot download {full_name} from {weights.url} ({exc}) and it is not in torch hub's cache",
                hint=f"download {weights.url} where the network is reachable and place it at {cached} "
                "(torch hub's cache: TORCH_HOME or torch.hub.set_dir choose the folder)",
            ) from exc
        except RuntimeError as exc:  # torch hub's hash check on download, or an unreadable cached file
            raise CorruptCheckpointError(
                f"{full_name} ({cached}) did not load: {exc}",
                hint=f"delete {cached} and try again; torch hub downloads it afresh and checks its hash",
                param="weights",
            ) from exc
        except pickle.UnpicklingError as exc:  # torch.load's weights-only unpickler refusing the file
            raise CorruptCheckpointError(
                f"{full_name} ({cached}) is not a plain state dict: {exc}",
                hint=f"delete {cached}; torch hub downloads it afresh",
                param="weights",
            ) from exc
    if arch.startswith("densenet"):
        for key in list(state):
            match = _DENSENET_KEY.match(key)
            if match:
                state[match.group(1) + match.group(2)] = state.pop(key)
    check_finite(state, full_name)
    digest = sha256_file(cached)
    matches = prefix is not None and digest.startswith(prefix)
    if not downloaded and prefix is not None and not matches:
        warnings.warn(
            f"{cached} does not match the SHA-256 prefix {prefix} in its name (torch hub checks it only "
            f"when it downloads); loaded as it is and recorded as not matching",
            UnverifiedWeightsWarning,
            stacklevel=2,
        )
    source = {
        "source": "torchvision",
        "name": full_name,
        "url": weights.url,
        "sha256_prefix": prefix,
        "sha256": digest,
        "sha256_matches": matches,
    }
    categories = weights.meta.get("categories")
    return state, WeightsInfo(
        source=source,
        class_names=distinct_names(categories) if categories else None,
        preprocessing=torchvision_preprocessing(weights),
        arch_kwargs=_torchvision_arch_kwargs(arch, weights),
    )


# --- timm -------------------------------------------------------------------------------------
_HF_CANDIDATES = ("model.safetensors", "pytorch_model.bin")


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    # read at call time too: huggingface_hub reads HF_HUB_CACHE once, at import
    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def _hf_offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_reachable(endpoint: str, timeout_s: float) -> bool:
    """Whether a TCP connection to the hub opens; huggingface_hub itself retries for about a minute."""
    import urllib.request

    if urllib.request.getproxies().get("https"):
        return True  # through a proxy: let huggingface_hub find out
    parsed = urlparse(endpoint)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def timm_hf_file(repo_id: str, filenames: Sequence[str], *, progress: bool = False) -> str:
    """The path of ``repo_id``'s weights in the Hugging Face cache, downloading them by
    ``huggingface_hub`` when they are not there; ``WeightsUnavailableError`` when offline.

    Args:
        repo_id: the Hugging Face hub repository.
        filenames: the weights file names to try, in order.
        progress: show the download's output on stderr (default False).
    """
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError

    cache_dir = _hf_cache_dir()
    for filename in filenames:
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
        if isinstance(hit, str):
            return hit
    folder = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    if _hf_offline() or not _hub_reachable(constants.ENDPOINT, DOWNLOAD_TIMEOUT_S):
        raise WeightsUnavailableError(
            f"timm weights '{repo_id}' are not in the Hugging Face cache ({folder}) and "
            f"{constants.ENDPOINT} cannot be reached",
            hint=f"run `hf download {repo_id} {filenames[0]}` where the network is reachable and copy "
            f"its cache folder models--{repo_id.replace('/', '--')} into {cache_dir} (HF_HUB_CACHE chooses it)",
        )
    for filename in filenames:
        try:
            with contextlib.redirect_stdout(sys.stderr if progress else io.StringIO()):
                return str(hf_hub_download(repo_id, filename, cache_dir=cache_dir))
        except EntryNotFoundError:
            continue
    raise WeightsUnavailableError(f"the hub repository '{repo_id}' holds none of {', '.join(filenames)}")


def timm_label_names(model: nn.Module, num_classes: int) -> tuple[str, ...] | None:
    """Class names from the model's pretrained config or timm's ImageNet label info, if they fit.

    Args:
        model: the timm model.
        num_classes: how many names fit its head.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    names: Sequence[str] | None = cfg.get("label_names")
    if not names:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if subset:
            # descriptions read 'tench, Tinca tinca': the first name, as torchvision's categories
            names = [d.split(",")[0].strip() for d in ImageNetInfo(subset).label_descriptions()]
    if not names or len(names) != num_classes:
        return None
    return distinct_names([str(n) for n in names])


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    """The evaluation transform timm resolves for ``model`` (``resolve_data_config``) as a record.

    Args:
        model: the timm model.
    """
    import math

    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    channels, height, width = (int(v) for v in cfg["input_size"])
    crop_pct = cfg.get("crop_pct")
    resize = None
    # timm's centre crop resizes the shorter side to floor(size / crop_pct) first
    if crop_pct and cfg.get("crop_mode", "center") == "center" and height == width:
        resize = math.floor(height / crop_pct)
    return Preprocessing(
        input_size=(height, width),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        channels=channels,
        interpolation=str(cfg.get("interpolation", "bilinear")),
        resize_size=resize,
    )


def load_timm_pretrained(arch: str, *, progress: bool = False, **kwargs: Any) -> tuple[nn.Module, WeightsInfo]:
    """``timm:<name>[.<tag>]`` with its pretrained weights from the Hugging Face hub cache.

    timm builds the model and loads the cached file itself (``pretrained_cfg_overlay`` names
    the file, so timm's filters and checks apply and nothing touches the network); the file
    comes from ``timm_hf_file``.

    Args:
        arch: ``timm:<name>[.<tag>]``.
        progress: show the hub's download output on stderr (default False).
        **kwargs: passed to timm's ``create_model`` (``num_classes``, ...).
    """
    from toolkit.models.architectures import build_architecture

    probe = build_architecture(arch, **kwargs)  # validates the name; carries the pretrained config
    cfg = dict(getattr(probe, "pretrained_cfg", None) or {})
    repo_id = cfg.get("hf_hub_id")
    if not repo_id:
        raise InvalidArgumentError(
            f"timm has no Hugging Face hub weights for '{arch}'",
            hint="name a tag that has them (timm.list_pretrained()), or give a weights file",
            param="pretrained",
        )
    filenames = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_CANDIDATES
    path = timm_hf_file(repo_id, filenames, progress=progress)
    import timm

    with torch.random.fork_rng(devices=[]):  # the layers timm draws before loading leave the caller's RNG alone
        model = timm.create_model(
            arch.removeprefix("timm:"), pretrained=True, pretrained_cfg_overlay={"file": path}, **kwargs
        )
    from toolkit.models.checkpoint import check_finite

    check_finite(model.state_dict(), repo_id)
    from toolkit.models.model_dir import sha256_file

    num_classes = int(getattr(model, "num_classes", 0) or cfg.get("num_classes", 0))
    source = {"source": "timm", "hub_id": repo_id, "file": Path(path).name, "sha256": sha256_file(path)}
    return model, WeightsInfo(
        source=source,
        class_names=timm_label_names(model, num_classes),
        preprocessing=timm_preprocessing(model),
    )


def file_source(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The lineage record of weights loaded from a file: its path and SHA-256.

    Args:
        path: the weights file.
    """
    from toolkit.models.model_dir import sha256_file

    return {"source": "file", "path": str(path), "sha256": sha256_file(path)}
