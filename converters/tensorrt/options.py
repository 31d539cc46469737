"""``BuildOptions``: how a TensorRT engine is built, declared once; and how its network is typed.

The one place the build's settings and their defaults are written: ``export_tensorrt`` reads the
record, ``rehead export tensorrt`` builds it from the flags a user gave (an absent flag takes the
default here), and the trtexec line is written from it. Contradicting settings are refused when
the record is made, naming the keyword argument at fault (``param``), before anything runs.
``BuildOptions.typing`` turns the options, the ONNX's precision and what the installed TensorRT
offers (``TrtFeatures``) into the flags one build sets. Everything here runs without TensorRT,
and the module is light (the standard library and ``toolkit.errors``): ``rehead --help`` reads
the defaults here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from toolkit.errors import InvalidArgumentError

#: ``hardware_compat`` values, as trtexec's ``--hardwareCompatibilityLevel`` spells them
HARDWARE_COMPAT = ("none", "ampere+", "same-compute-capability")
#: TensorRT's builder optimisation levels (3 is its default)
OPT_LEVELS = range(0, 6)
#: the largest batch of the profile when neither ``max_batch`` nor a larger ``min_batch`` says
DEFAULT_MAX_BATCH = 32
#: the device an engine is built, checked and refitted on when none is named (``export_tensorrt``,
#: ``refit_engine``)
DEFAULT_DEVICE = "cuda"
#: TensorRT's ``BuilderFlag`` members that weak typing needs (TensorRT <= 10 has them; 11 does not)
WEAK_TYPING_FLAGS = ("FP16", "BF16", "INT8")


def size_pair(value: Sequence[int] | None, name: str) -> tuple[int, int] | None:
    """``value`` as a (height, width) pair of positive integers, or None when it is None.

    Args:
        value: two positive integers, or None.
        name: the keyword argument it came from, named by the ``InvalidArgumentError`` it raises.
    """
    if value is None:
        return None
    size = tuple(value)
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
        raise InvalidArgumentError(
            f"{name} must be two positive integers (height, width), got {value!r}", hint="e.g. (224, 224)", param=name
        )
    return (int(size[0]), int(size[1]))


def _count(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer ≥ {minimum}, got {value!r}", param=name)
    return int(value)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How to build an engine (checked on construction, each error naming its keyword argument).

    INT8 comes only from a QDQ ONNX (``export_onnx(int8=True, int8_target="tensorrt")``): implicit
    calibration is deprecated in TensorRT 10 and gone in 11.

    Args:
        min_batch: the optimisation profile's smallest batch (default 1).
        opt_batch: the batch TensorRT tunes for; None (the default): ``max_batch``.
        max_batch: the profile's largest batch; None (the default): 32, or ``min_batch`` when larger.
        min_size: (height, width), only for an ONNX input with dynamic spatial axes; give all
            three sizes or none (None, the default: the model's input size).
        opt_size: the (height, width) the profile tunes for.
        max_size: the profile's largest (height, width).
        fp16: allow fp16 kernels in an fp32 ONNX (default False). Weak typing: only where the
            installed TensorRT still has it, deprecated; TensorRT 11 removed it (``typing``).
        bf16: the same for bf16 kernels (default False).
        tf32: allow TF32 for fp32 layers (default False: TensorRT enables it by default, rehead
            does not, so an fp32 engine is fp32).
        strongly_typed: the ONNX's own types decide every precision, no precision flags (default
            False; always so for an fp16 or QDQ ONNX, and on TensorRT 11 for every ONNX).
        workspace_mib: the workspace memory pool limit in MiB (None, the default: TensorRT's,
            the GPU's memory).
        opt_level: the builder optimisation level 0-5 (default 3, TensorRT's).
        timing_cache: a file loaded before the build and saved after it (None, the default: none).
        hardware_compat: ``none`` (the default: this GPU's compute capability), ``ampere+`` (any
            Ampere or newer GPU) or ``same-compute-capability``.
        version_compatible: runs on later TensorRT versions of the same major through the lean
            runtime, which the plan carries (default False).
        refittable: the weights can be replaced later (``refit_engine``; default False).
        strip_weights: a weight-stripped plan, refitted with the same ONNX before use (default
            False; built with ``REFIT_IDENTICAL``, which is only valid for identical weights).
    """

    min_batch: int = 1
    opt_batch: int | None = None
    max_batch: int | None = None
    min_size: tuple[int, int] | None = None
    opt_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    fp16: bool = False
    bf16: bool = False
    tf32: bool = False
    strongly_typed: bool = False
    workspace_mib: int | None = None
    opt_level: int = 3
    timing_cache: str | None = None
    hardware_compat: str = "none"
    version_compatible: bool = False
    refittable: bool = False
    strip_weights: bool = False

    def __post_init__(self) -> None:
        self._check_batches()
        self._check_sizes()
        if self.strongly_typed and (self.fp16 or self.bf16):
            flag = "fp16" if self.fp16 else "bf16"
            raise InvalidArgumentError(
                f"strongly_typed takes every precision from the ONNX; {flag} cannot be combined with it",
                hint="export an fp16 ONNX (export_onnx(fp16=True)) for an fp16 strongly typed engine",
                param=flag,
            )
        if self.fp16 and self.bf16:
            raise InvalidArgumentError("choose fp16 or bf16, not both", param="bf16")
        if self.workspace_mib is not None:
            _count(self.workspace_mib, "workspace_mib")
        if isinstance(self.opt_level, bool) or self.opt_level not in OPT_LEVELS:
            raise InvalidArgumentError(
                f"opt_level must be 0-5 (TensorRT's builder optimisation level), got {self.opt_level!r}",
                param="opt_level",
            )
        if self.timing_cache is not None:  # a path object is taken too, and kept as text
            object.__setattr__(self, "timing_cache", os.fspath(self.timing_cache))
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise InvalidArgumentError(
                f"unknown hardware_compat '{self.hardware_compat}'",
                hint=f"one of {', '.join(HARDWARE_COMPAT)}",
                param="hardware_compat",
            )
        if self.refittable and self.strip_weights:
            raise InvalidArgumentError(
                "choose refittable (new weights later) or strip_weights (the same weights, refit at deployment)",
                hint="strip_weights builds with REFIT_IDENTICAL, which is wrong for different weights",
                param="strip_weights",
            )

    def _check_batches(self) -> None:
        """min ≤ opt ≤ max; the defaults filled in (``opt_batch`` and ``max_batch`` are set after)."""
        low = _count(self.min_batch, "min_batch")
        high = _count(self.max_batch, "max_batch") if self.max_batch is not None else max(low, DEFAULT_MAX_BATCH)
        mid = _count(self.opt_batch, "opt_batch") if self.opt_batch is not None else high
        if not low <= mid <= high:
            raise InvalidArgumentError(
                f"the batch range must satisfy min ≤ opt ≤ max, got {low}, {mid}, {high}",
                hint="e.g. min_batch=1, opt_batch=8, max_batch=32",
                param="opt_batch" if self.opt_batch is not None else "max_batch",
            )
        object.__setattr__(self, "max_batch", high)
        object.__setattr__(self, "opt_batch", mid)

    def _check_sizes(self) -> None:
        """All three spatial sizes or none, each pair min ≤ opt ≤ max per axis."""
        sizes = [size_pair(getattr(self, n), n) for n in ("min_size", "opt_size", "max_size")]
        for name, size in zip(("min_size", "opt_size", "max_size"), sizes, strict=True):
            object.__setattr__(self, name, size)
        given = [s for s in sizes if s is not None]
        if given and len(given) != 3:
            raise InvalidArgumentError(
                "give all three of min_size, opt_size and max_size, or none",
                hint="e.g. min_size=(160, 160), opt_size=(224, 224), max_size=(320, 320)",
                param="min_size",
            )
        if len(given) == 3 and not all(a <= b <= c for a, b, c in zip(*given, strict=True)):
            raise InvalidArgumentError(
                f"the size range must satisfy min ≤ opt ≤ max per axis, got {given}", param="opt_size"
            )

    @property
    def builder_flags(self) -> tuple[str, ...]:
        """TensorRT ``BuilderFlag`` names for everything but precision (TF32 is cleared unless ``tf32``)."""
        flags = ["TF32"] if self.tf32 else []
        if self.version_compatible:
            flags.append("VERSION_COMPATIBLE")
        if self.refittable:
            flags.append("REFIT")
        if self.strip_weights:
            flags += ["STRIP_PLAN", "REFIT_IDENTICAL"]
        return tuple(flags)

    def typing(self, onnx_precision: str, features: TrtFeatures) -> Typing:
        """How the network is typed and which flags the build sets.

        Precision comes from the graph: an fp16 or QDQ ONNX is always built strongly typed with no
        precision flags (NVIDIA's advice on TensorRT 10; the only mode on 11). ``fp16``/``bf16`` on
        an fp32 ONNX set the weak-typing flag where TensorRT still has it (deprecated: a note) and
        are refused (``InvalidArgumentError``, before any GPU work) where it does not.

        Args:
            onnx_precision: the ONNX's precision: fp32, fp16 or int8 (= QDQ).
            features: what the installed TensorRT offers (``tensorrt_features()``).
        """
        asked = "fp16" if self.fp16 else ("bf16" if self.bf16 else None)
        if asked is not None and onnx_precision != "fp32":
            raise InvalidArgumentError(
                f"--{asked} applies to an fp32 ONNX; this ONNX is {onnx_precision} and its types decide the "
                "engine's precision (built strongly typed)",
                hint=f"drop --{asked}",
                param=asked,
            )
        if asked is not None and not features.weak_typing:
            raise InvalidArgumentError(
                f"TensorRT {features.version} builds every network strongly typed: --{asked} (weak typing) "
                "is gone",
                hint="export an fp16 ONNX (rehead export onnx --fp16: fp16 graph, fp32 inputs and outputs, "
                "sensitive layers kept fp32) and build it without --fp16",
                param=asked,
            )
        if asked is not None:
            return Typing(
                strongly_typed=False,
                flags=(asked.upper(), *self.builder_flags),
                precision=asked,
                notes=(
                    f"--{asked} uses weak typing, deprecated in TensorRT 10 and removed in 11: export an fp16 "
                    "ONNX (rehead export onnx --fp16) instead",
                ),
            )
        # an fp32 ONNX without precision flags builds the same fp32 engine typed either way: it is typed as
        # asked where TensorRT still has weak typing, strongly where that is the only mode (11)
        strong = self.strongly_typed or onnx_precision != "fp32" or not features.weak_typing
        tf32 = "tf32" if self.tf32 else "fp32"
        return Typing(
            strongly_typed=strong,
            flags=self.builder_flags,
            precision=onnx_precision if onnx_precision != "fp32" else tf32,
        )


@dataclasses.dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT offers, detected by feature (its enum members), never by number.

    ``weak_typing``: ``BuilderFlag`` still has the precision flags (FP16, BF16, INT8): TensorRT 10
    has them, TensorRT 11 builds every network strongly typed and removed them.
    """

    version: str
    weak_typing: bool

    @classmethod
    def detect(cls, version: str, builder_flags: Sequence[str]) -> TrtFeatures:
        """The features of a TensorRT.

        Args:
            version: its version.
            builder_flags: the member names of its ``BuilderFlag`` enum.
        """
        return cls(version=version, weak_typing=all(f in builder_flags for f in WEAK_TYPING_FLAGS))


#: TensorRT 10's features (weak typing still there, deprecated)
TENSORRT_10 = TrtFeatures("10", weak_typing=True)
#: TensorRT 11's features (every network strongly typed)
TENSORRT_11 = TrtFeatures("11", weak_typing=False)


@dataclasses.dataclass(frozen=True)
class Typing:
    """How one engine is built: strongly typed or not, the ``BuilderFlag`` names set, the precision
    it computes in (int8, fp16, bf16, tf32 or fp32) and notes for the user (deprecations)."""

    strongly_typed: bool
    flags: tuple[str, ...]
    precision: str
    notes: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        """``strong`` or ``weak``."""
        return "strong" if self.strongly_typed else "weak"
