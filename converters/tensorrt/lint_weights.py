"""The TensorRT lint's weight and file checks: INT64 weights, external data and the model's size.

TensorRT narrows INT64 weights to INT32 (an error when their values do not fit, a warning when
they sit in external data, unread); an external-data file must sit inside the model's folder
under a plain name, and a model over protobuf's 2 GiB must be parsed from its file path.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from converters.onnx.external import TWO_GIB
from converters.onnx.preflight import _INT32_MAX, _SHAPE_CONSTANT_MAX, Finding
from converters.tensorrt._lint_common import element_count, is_external

if TYPE_CHECKING:
    import onnx


def check_int64(model: onnx.ModelProto) -> list[Finding]:
    """INT64 tensors beyond shape constants: a warning, an error when a value does not fit INT32.

    Args:
        model: the loaded model (external data not loaded: those values are not checked).
    """
    import onnx
    from onnx import numpy_helper

    from converters.onnx import graph

    found: list[Finding] = []
    for tensor in graph.tensors(model):
        # Small INT64 tensors are shape constants (Reshape targets, Slice ends of INT64_MAX):
        # TensorRT handles those, and clamps the conventional "to the end" values itself.
        if tensor.data_type != onnx.TensorProto.INT64 or element_count(tensor) <= _SHAPE_CONSTANT_MAX:
            continue
        name = tensor.name or "<constant>"
        count = element_count(tensor)
        narrow = "TensorRT runs most layers without INT64 and narrows INT64 weights to INT32"
        if is_external(tensor):
            found.append(
                Finding(
                    "int64-weights",
                    "warning",
                    f"INT64 initializer of {count} elements; {narrow}; its values sit in external data, "
                    "not read here, so their range is unchecked",
                    node=name,
                    hint="store it as int32 (or float) in the model",
                )
            )
            continue
        values = numpy_helper.to_array(tensor)
        wide = values.size > 0 and int(abs(values).max()) > _INT32_MAX
        found.append(
            Finding(
                "int64-weights",
                "error" if wide else "warning",
                f"INT64 initializer of {count} elements"
                + (" holds values beyond INT32 range" if wide else f"; {narrow}"),
                node=name,
                hint="store it as int32 (or float) in the model",
            )
        )
    return found



def _location_problem(location: str, folder: Path) -> str | None:
    """Why an external-data ``location`` may not be used (None: it is a file inside ``folder``)."""
    if not location:
        return "is empty"
    windows = PureWindowsPath(location)
    if PurePosixPath(location).is_absolute() or windows.is_absolute() or windows.drive:
        return "is an absolute path"
    if ".." in location.replace("\\", "/").split("/"):
        return "climbs out of the model's folder ('..')"
    target = folder / location
    if target.is_symlink():
        return "is a symlink"
    if not target.resolve().is_relative_to(folder.resolve()):
        return "resolves outside the model's folder"
    return None


def check_size(model: onnx.ModelProto, model_path: Path) -> list[Finding]:
    """External-data files (each inside the model's folder, present) and the total size.

    Args:
        model: the loaded model (external data not loaded: only the files' sizes are read).
        model_path: the ``.onnx`` file, beside which its data files must sit.
    """
    from converters.onnx import graph

    folder = model_path.parent
    locations: list[str] = []
    for tensor in graph.tensors(model):
        location = graph.external_location(tensor)
        if location is not None and location not in locations:
            locations.append(location)
    found: list[Finding] = []
    total = model_path.stat().st_size
    for location in locations:
        problem = _location_problem(location, folder)
        if problem is not None:
            found.append(
                Finding(
                    "external-data-location",
                    "error",
                    f"external-data location '{location}' {problem}",
                    node=location,
                    hint="keep the data file beside the .onnx under a plain name (re-export with rehead)",
                )
            )
        elif not (folder / location).is_file():
            found.append(
                Finding(
                    "external-data-missing",
                    "error",
                    f"external-data file '{location}' is missing beside the model",
                    node=location,
                    hint="copy the data file beside the .onnx file (they travel together)",
                )
            )
        else:
            total += (folder / location).stat().st_size  # size only: the data is never read
    if total > TWO_GIB:
        found.append(
            Finding(
                "model-size",
                "warning",
                f"model and external data take {total / 1024**3:.2f} GiB, over protobuf's 2 GiB: parse it "
                "from its file path (not from bytes in memory) with the data files beside it",
                hint="build from the .onnx path so the parser finds the external data",
            )
        )
    elif locations:
        found.append(
            Finding(
                "external-data",
                "info",
                f"weights sit in {len(locations)} external-data file(s): parse from the file path, "
                "with the data beside the .onnx",
            )
        )
    return found
