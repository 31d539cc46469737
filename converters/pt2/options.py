"""``Pt2ExportOptions``: what a ``.pt2`` export makes, declared once.

``export_pt2`` reads the record, ``rehead export pt2`` builds it from the flags a user gave (an
absent flag takes the default here), and reports serialise it (``to_json``).
"""

from __future__ import annotations

import dataclasses

from toolkit._option_record import OptionRecord


@dataclasses.dataclass(frozen=True)
class Pt2ExportOptions(OptionRecord):
    """The settings of one AOTInductor export (``export_pt2``).

    Args:
        dynamic_batch: a dynamic batch axis, 1-4096 (default True); False fixes it at 1.
        device: what the package is compiled for and will run on: ``cpu`` (the default),
            ``cuda`` or ``cuda:N``; checked when the export starts (``toolkit._args.check_device``).
    """

    _WHAT = "pt2 export options"

    dynamic_batch: bool = True
    device: str = "cpu"
