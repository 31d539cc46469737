"""The optimisation profile: the input's min/opt/max shapes an engine is built for and runs inside.

``resolve_profile`` makes it from the ONNX input's dimensions and the build options; the sidecar
stores it (``EngineRecord.profile``) and a running engine refuses a batch outside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from converters.tensorrt.options import BuildOptions
from toolkit.errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class Profile:
    """One optimisation profile: the input's name and its min/opt/max shapes."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def contains(self, shape: Sequence[int]) -> bool:
        """Whether an input of ``shape`` is inside the profile (same rank, each axis in range).

        Args:
            shape: the input's shape.
        """
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for s, lo, hi in zip(shape, self.min, self.max, strict=True)
        )

    def describe(self) -> str:
        """``images: min 1x3x224x224, opt 8x3x224x224, max 32x3x224x224``."""

        def dims(shape: tuple[int, ...]) -> str:
            return "x".join(str(d) for d in shape)

        return f"{self.input}: min {dims(self.min)}, opt {dims(self.opt)}, max {dims(self.max)}"

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        """Parse a ``to_json`` record.

        Args:
            data: the record's JSON object.
        """
        return cls(
            input=str(data["input"]),
            min=tuple(int(v) for v in data["min"]),
            opt=tuple(int(v) for v in data["opt"]),
            max=tuple(int(v) for v in data["max"]),
        )


def resolve_profile(
    name: str, dims: Sequence[int | str | None], options: BuildOptions, default_size: tuple[int, int] | None
) -> Profile:
    """The profile for one NCHW input.

    A fixed batch axis must hold the whole batch range; a dynamic spatial axis takes the
    options' size range, else ``default_size`` fixed. ``InvalidArgumentError`` otherwise.

    Args:
        name: the input's name.
        dims: its dimensions: ints for fixed axes, names or None for dynamic ones.
        options: the build options (batch and size ranges).
        default_size: the model's input size (height, width), or None when unknown.
    """
    if len(dims) != 4:
        raise InvalidArgumentError(
            f"input '{name}' has rank {len(dims)}; rehead builds engines for NCHW image classifiers",
            hint="export the model with rehead export onnx",
        )
    batch = dims[0]
    low, mid, high = options.min_batch, options.opt_batch or 1, options.max_batch or 1
    if isinstance(batch, int) and batch > 0 and (low, high) != (batch, batch):
        raise InvalidArgumentError(
            f"the ONNX input '{name}' has a fixed batch of {batch}; the profile asks for {low}-{high}",
            hint=f"use min_batch=opt_batch=max_batch={batch}, or re-export with a dynamic batch",
            param="max_batch",
        )
    shapes: list[list[int]] = [[low], [mid], [high]]
    for axis, dim in enumerate(dims[1:], start=1):
        if isinstance(dim, int) and dim > 0:
            for shape in shapes:
                shape.append(dim)
            continue
        if axis == 1:
            raise InvalidArgumentError(f"input '{name}' has a dynamic channel axis", hint="export with 3 channels")
        sizes = (options.min_size, options.opt_size, options.max_size)
        if sizes[0] is None:
            if default_size is None:
                raise InvalidArgumentError(
                    f"input '{name}' has dynamic height/width and no size range was given",
                    hint="pass min_size, opt_size and max_size (height, width)",
                    param="min_size",
                )
            sizes = (default_size, default_size, default_size)
        for shape, size in zip(shapes, sizes, strict=True):
            shape.append(size[axis - 2] if size is not None else 0)
    return Profile(name, tuple(shapes[0]), tuple(shapes[1]), tuple(shapes[2]))
