"""``Failure``: one failed (or undecidable) check as a record, not a string.

Everything that reports a failure (status, console, JSON, JUnit, HTML, the export check)
reads these fields; ``message`` is the human line with the numbers, never parsed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: what failed: parity of values, a shape or missing output, NaN/Inf in the inputs, a latency gate
KINDS = ("parity", "shape", "missing-output", "inputs", "latency", "speedup")


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failed check.

    ``kind``: one of ``KINDS``. ``metric``: what was measured (``max_abs``, ``top1``, ``sqnr_db``,
    ``cosine_min``, ``nonfinite``, ``shape``, ``p99_ms``, ``speedup``); ``value`` and ``bound``
    its number and the limit it broke (``None`` where there is no number). ``conclusive``
    False means the check could not be decided (a noisy latency), which is never a pass.
    ``artifact``, ``batch_size``, ``output`` and ``class_slice`` say where; ``worst_class`` and
    ``worst_class_name`` name the class with the largest error inside the failing slice.
    """

    kind: str
    metric: str
    message: str
    artifact: str | None = None
    batch_size: int | None = None
    output: str | None = None
    class_slice: str | None = None
    value: float | None = None
    bound: float | None = None
    conclusive: bool = True
    worst_class: int | None = None
    worst_class_name: str | None = None

    def replace(self, **changes: Any) -> Failure:
        """A copy with ``changes`` applied (``dataclasses.replace``).

        Args:
            **changes: the fields to change, by name.
        """
        return dataclasses.replace(self, **changes)

    def line(self) -> str:
        """``artifact: message`` (the message alone when no artifact is set)."""
        return f"{self.artifact}: {self.message}" if self.artifact else self.message

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("value", "bound"):
            v = data[key]
            if isinstance(v, float) and not math.isfinite(v):
                data[key] = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Failure:
        """Parse a ``to_json`` record: unknown keys are dropped, ``"nan"``/``"inf"`` values read as floats.

        Args:
            data: the record's JSON object.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for key in ("value", "bound"):
            if isinstance(values.get(key), str):
                values[key] = float(values[key])
        return cls(**values)
