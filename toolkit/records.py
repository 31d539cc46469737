"""Frozen, typed records that flow through every stage: ``HeadSpec``, ``Preprocessing``, ``ModelConfig``.

``ModelConfig`` is what ``config.json`` of a model directory holds. Every stage reads it, none
mutates it in place: a stage that changes the model writes a new record with ``replace``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.errors import ModelDirError

SCHEMA_VERSION = 1

ORIGIN_KINDS: tuple[str, ...] = ("kept", "copy", "random", "mean", "imprint", "init")


def _typed(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    """``data[name]`` if it is of ``kind`` (a bool is never an int here), else ``ModelDirError``
    naming the field; ``default`` when the field is absent (no default: it is required)."""
    if name not in data:
        if default is ...:
            raise ModelDirError(f"{where} lacks the field '{name}'", hint="re-create the model directory with rehead")
        return default
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ModelDirError(
            f"{where}: field '{name}' must be {names}, got {type(value).__name__} {str(value)[:40]!r}",
            hint="re-create the model directory with rehead (config.json is written by it)",
        )
    return value


def _positive(value: int, name: str, where: str) -> int:
    if value <= 0:
        raise ModelDirError(f"{where}: field '{name}' must be positive, got {value}",
                            hint="re-create the model directory with rehead")
    return value


@dataclasses.dataclass(frozen=True)
class ClassOrigin:
    """Where one output row of the new head came from.

    ``kind``: ``kept`` (old row ``source`` kept bit-for-bit), ``copy`` (copied from old row
    ``source``), ``random`` (seeded normal draw), ``mean`` (mean of the old rows), ``imprint``
    (normalised mean feature of example images), ``init`` (the layer's default initialisation).
    """

    kind: str
    source: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ORIGIN_KINDS:
            raise ModelDirError(f"unknown class origin '{self.kind}'", hint=f"one of {', '.join(ORIGIN_KINDS)}")
        if self.kind in ("kept", "copy") and self.source is None:
            raise ModelDirError(f"class origin '{self.kind}' needs a source index")

    @property
    def is_new(self) -> bool:
        """True for every row that is not an old class kept as it was."""
        return self.kind != "kept"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source}


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """What head surgery did, recorded so that every later stage can rebuild and check it.

    ``module`` is the dotted name of the head inside the model (``fc``, ``classifier.1``);
    ``aux_modules`` names auxiliary heads (googlenet, inception) resized the same way.
    ``kind`` is the layer type of the head: ``linear`` or ``conv1x1`` (squeezenet). A non-empty
    ``hidden`` makes it a block head (``bottleneck``/``mlp``): layers of those widths with
    ``activation`` and ``dropout`` before the output layer. ``origins`` has one entry per output
    class of the new head. ``trained_runs`` has one entry per fine-tuning run since the head
    was made, in order: the indices of the classes that run had training images for (a run on
    data for the new classes only lists just those; the others were kept, see the lineage).
    """

    strategy: str
    module: str
    kind: str
    in_features: int
    old_num_classes: int
    num_classes: int
    origins: tuple[ClassOrigin, ...]
    bias: bool = True
    hidden: tuple[int, ...] = ()
    activation: str = "relu"
    dropout: float = 0.0
    aux_modules: tuple[str, ...] = ()
    seed: int | None = None
    trained_runs: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.origins) != self.num_classes:
            raise ModelDirError(
                f"head spec lists {len(self.origins)} class origins for {self.num_classes} classes"
            )

    @property
    def kept_indices(self) -> tuple[int, ...]:
        """Output indices whose rows are old classes kept bit-for-bit."""
        return tuple(i for i, o in enumerate(self.origins) if not o.is_new)

    @property
    def new_indices(self) -> tuple[int, ...]:
        """Output indices of classes that are new (copied, random, mean, imprinted, re-initialised)."""
        return tuple(i for i, o in enumerate(self.origins) if o.is_new)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["origins"] = [o.to_json() for o in self.origins]
        data["hidden"] = list(self.hidden)
        data["aux_modules"] = list(self.aux_modules)
        data["trained_runs"] = [list(run) for run in self.trained_runs]
        return data

    def with_trained_run(self, classes: tuple[int, ...]) -> HeadSpec:
        """This spec with one more fine-tuning run that trained ``classes`` (output indices).

        Args:
            classes: the output indices of the classes that run had training images for.
        """
        return dataclasses.replace(self, trained_runs=(*self.trained_runs, tuple(classes)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadSpec:
        """Read ``config.json``'s ``head`` object (``ModelDirError`` when it is malformed).

        Args:
            data: the JSON object.
        """
        where = "config.json head"
        if not isinstance(data, Mapping):
            raise ModelDirError(f"{where} must be a JSON object, got {type(data).__name__}")
        for name in ("strategy", "module", "kind"):
            _typed(data, name, str, where)
        for name in ("in_features", "old_num_classes", "num_classes"):
            _positive(_typed(data, name, int, where), name, where)
        _typed(data, "origins", list, where)
        _typed(data, "bias", bool, where, True)
        _typed(data, "dropout", (int, float), where, 0.0)
        _typed(data, "seed", (int, type(None)), where, None)
        try:
            fields = dict(data)
            fields["origins"] = tuple(ClassOrigin(**o) for o in fields["origins"])
            fields["hidden"] = tuple(int(h) for h in fields.get("hidden", ()))
            fields["aux_modules"] = tuple(fields.get("aux_modules", ()))
            fields["trained_runs"] = tuple(tuple(int(i) for i in run) for run in fields.get("trained_runs", ()))
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelDirError(f"invalid head spec in config.json: {exc}") from exc

    @classmethod
    def identity(cls, module: str, kind: str, in_features: int, num_classes: int, *, bias: bool = True) -> HeadSpec:
        """The record of an untouched head: every class kept.

        Args:
            module: the dotted name of the head in the model (``fc``, ``classifier.1``).
            kind: the head's layer type, ``linear`` or ``conv1x1``.
            in_features: the head's input width.
            num_classes: how many classes it outputs.
            bias: whether the head has a bias (default True).
        """
        return cls(
            strategy="none",
            module=module,
            kind=kind,
            in_features=in_features,
            old_num_classes=num_classes,
            num_classes=num_classes,
            origins=tuple(ClassOrigin("kept", i) for i in range(num_classes)),
            bias=bias,
        )


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become the model's input: resize, scale to [0, 1], then normalise per channel
    with ``mean`` and ``std``. ``channels`` is 3 (RGB) or 1.

    ``input_size`` (H, W) pixels is the model's input, the size export, bake and validation use.
    ``resize_size`` (pixels), when set, is how pretrained weights were evaluated: the shorter
    side resized to ``resize_size`` with ``interpolation``, then a centre crop of ``input_size``
    (torchvision's ``weights.transforms()``: 256 then 224 for ResNet18 V1; timm's ``crop_pct``).
    ``None`` (the default, and what older config.json files mean) resizes straight to ``input_size``.
    """

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    interpolation: str = "bilinear"
    resize_size: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
            "interpolation": self.interpolation,
        }
        # Written only when set, so that records without a crop stay byte-identical to older ones.
        if self.resize_size is not None:
            data["resize_size"] = self.resize_size
        return data

    def with_input_size(self, side: int) -> Preprocessing:
        """This preprocessing at a square ``side`` x ``side`` input; a resize before the crop
        keeps its ratio to the crop (256/224 stays 256/224), as timm's ``crop_pct`` does.

        Args:
            side: the input's height and width, in pixels.
        """
        resize = None
        if self.resize_size is not None:
            resize = max(side, round(side * self.resize_size / min(self.input_size)))
        return dataclasses.replace(self, input_size=(side, side), resize_size=resize)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Read ``config.json``'s ``preprocessing`` object (``ModelDirError`` when it is malformed).

        Args:
            data: the JSON object.
        """
        where = "config.json preprocessing"
        if not isinstance(data, Mapping):
            raise ModelDirError(f"{where} must be a JSON object, got {type(data).__name__}")
        size = _typed(data, "input_size", list, where)
        channels = _positive(_typed(data, "channels", int, where, 3), "channels", where)
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ModelDirError(f"{where}: field 'input_size' must be [height, width] in pixels, got {size!r}",
                                hint="re-create the model directory with rehead")
        for name in ("mean", "std"):
            values = _typed(data, name, list, where)
            if len(values) != channels or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
            ):
                raise ModelDirError(f"{where}: field '{name}' must be {channels} finite numbers, got {values!r}",
                                    hint="re-create the model directory with rehead")
        if any(v <= 0 for v in data["std"]):
            raise ModelDirError(f"{where}: field 'std' must be positive, got {data['std']!r}",
                                hint="re-create the model directory with rehead")
        _typed(data, "interpolation", str, where, "bilinear")
        resize = _typed(data, "resize_size", (int, type(None)), where, None)
        if resize is not None:
            _positive(resize, "resize_size", where)
        try:
            h, w = (int(v) for v in data["input_size"])
            return cls(
                input_size=(h, w),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                channels=int(data.get("channels", 3)),
                interpolation=str(data.get("interpolation", "bilinear")),
                resize_size=None if data.get("resize_size") is None else int(data["resize_size"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelDirError(f"invalid preprocessing in config.json: {exc}") from exc

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """NCHW shape of a batch of ``batch`` images.

        Args:
            batch: how many images (default 1).
        """
        return (batch, self.channels, *self.input_size)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The record of a model directory (``config.json``).

    ``arch`` names the architecture as ``load_model`` takes it (a torchvision builder,
    ``timm:<name>`` or ``py:<module>:<factory>``); ``arch_kwargs`` are passed to the builder.
    ``weights_sha256`` is the hash of ``model.safetensors``; ``lineage`` lists the stages that
    produced this directory (extend, finetune, ...), oldest first.
    """

    arch: str
    head: HeadSpec
    class_names: tuple[str, ...]
    preprocessing: Preprocessing = Preprocessing()
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    weights_sha256: str = ""
    lineage: tuple[Mapping[str, Any], ...] = ()
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if len(self.class_names) != self.head.num_classes:
            raise ModelDirError(
                f"config lists {len(self.class_names)} class names for a head of {self.head.num_classes} classes"
            )

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (records are frozen).

        Args:
            changes: the fields to change, by name, and their new values.
        """
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "head": self.head.to_json(),
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.to_json(),
            "weights_sha256": self.weights_sha256,
            "lineage": [dict(step) for step in self.lineage],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Read a parsed ``config.json``: schema version and fields checked (``ModelDirError`` otherwise).

        Args:
            data: the JSON object.
        """
        if not isinstance(data, Mapping):
            raise ModelDirError("config.json must hold a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ModelDirError(
                f"config.json has schema_version {str(version)[:40]}; this rehead reads {SCHEMA_VERSION}",
                hint="upgrade rehead or re-create the model directory",
            )
        where = "config.json"
        _typed(data, "arch", str, where)
        _typed(data, "head", dict, where)
        names = _typed(data, "class_names", list, where)
        if not all(isinstance(n, str) for n in names):
            raise ModelDirError(f"{where}: field 'class_names' must be a list of strings",
                                hint="re-create the model directory with rehead")
        _typed(data, "preprocessing", dict, where, None)
        _typed(data, "arch_kwargs", dict, where, {})
        _typed(data, "weights_sha256", str, where, "")
        lineage = _typed(data, "lineage", list, where, [])
        if not all(isinstance(step, dict) for step in lineage):
            raise ModelDirError(f"{where}: field 'lineage' must be a list of objects",
                                hint="re-create the model directory with rehead")
        try:
            return cls(
                arch=str(data["arch"]),
                head=HeadSpec.from_json(data["head"]),
                class_names=tuple(str(c) for c in data["class_names"]),
                preprocessing=Preprocessing.from_json(data.get("preprocessing", Preprocessing().to_json())),
                arch_kwargs=dict(data.get("arch_kwargs", {})),
                weights_sha256=str(data.get("weights_sha256", "")),
                lineage=tuple(dict(s) for s in data.get("lineage", ())),
            )
        except KeyError as exc:
            raise ModelDirError(f"config.json lacks the field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ModelDirError(
                f"config.json is malformed: {exc}", hint="re-create the model directory with rehead"
            ) from exc


def check_class_names(names: Sequence[str], num_classes: int) -> tuple[str, ...]:
    """Class names must be ``num_classes`` distinct non-empty strings.

    Args:
        names: the class names (surrounding spaces are stripped).
        num_classes: how many classes the head has.
    """
    from toolkit.errors import InvalidArgumentError

    names = tuple(str(n).strip() for n in names)
    if len(names) != num_classes:
        raise InvalidArgumentError(
            f"{len(names)} class names given for {num_classes} classes",
            hint="give exactly one name per class, one per line",
            param="class_names",
        )
    if any(not n for n in names):
        raise InvalidArgumentError(
            "a class name is empty", hint="give one non-empty name per line", param="class_names"
        )
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InvalidArgumentError(
                f"class name '{n}' appears twice", hint="class names must be distinct", param="class_names"
            )
        seen.add(n)
    return names
