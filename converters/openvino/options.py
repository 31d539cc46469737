"""``OpenVinoExportOptions``: what an OpenVINO IR export makes, declared once."""

from __future__ import annotations

import dataclasses

from toolkit._option_record import OptionRecord
from toolkit.errors import InvalidArgumentError

#: OpenVINO's inference precisions (``INFERENCE_PRECISION_HINT``), declared once: the export's
#: check, the runner and ``rehead validate --ov-precision`` take these
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")
#: inference precisions an IR can be checked at before it is published
CHECK_PRECISIONS = INFERENCE_PRECISIONS


@dataclasses.dataclass(frozen=True)
class OpenVinoExportOptions(OptionRecord):
    """The settings of one OpenVINO export (``export_openvino``).

    Args:
        compress_to_fp16: store the weights in fp16 (half the ``.bin``; what iGPUs and NPUs run;
            a CPU decompresses them at load). Default False. An INT8 QDQ source keeps its INT8.
        check_precision: the inference precision the IR is judged at against eager before it
            is published: ``f32`` (default), ``bf16`` or ``f16``, each with its preset.
        threads: threads of the check (None: OpenVINO's choice).
    """

    _WHAT = "OpenVINO export options"

    compress_to_fp16: bool = False
    check_precision: str = "f32"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.check_precision not in CHECK_PRECISIONS:
            raise InvalidArgumentError(
                f"unknown OpenVINO inference precision '{self.check_precision}'",
                hint=f"check_precision is one of {', '.join(CHECK_PRECISIONS)}",
                param="check_precision",
            )
