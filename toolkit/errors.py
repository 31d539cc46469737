"""One exception root for rehead, one class per kind of failure.

Every error carries a one-line message and a hint. The CLI maps each class to an exit code
through its ``exit_code`` attribute: 2 bad input or usage, 3 missing dependency or hardware,
1 a validation gate failed. ``InternalError`` (exit 4) is rehead's own bug, kept apart from
"your input".
"""

from __future__ import annotations


class ReheadError(Exception):
    """Root of every error rehead raises on purpose."""

    exit_code: int = 2
    default_hint: str = "the traceback says more (debug mode)"

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        #: the keyword argument at fault (``calib_samples``), so that the CLI can name its flag
        self.param = param

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        hint = " ".join(self.hint.split())
        return f"{text}; hint: {hint}"


# --- bad input or usage: exit 2 -------------------------------------------------------------
class BadInputError(ReheadError):
    """The user's input is wrong; nothing was written."""

    exit_code = 2


class InvalidArgumentError(BadInputError, ValueError):
    """An argument is out of range, of the wrong type, or contradicts the model's record.

    Also a ``ValueError``, so that library callers can catch it the usual way."""


class CorruptCheckpointError(BadInputError):
    """A weights file is truncated, empty or not what its extension says."""

    default_hint = "re-download or re-save the checkpoint; rehead reads .safetensors and .pt/.pth state dicts"


class UnsafeCheckpointError(BadInputError):
    """A checkpoint needs arbitrary code (pickle) to load and the user did not opt in."""


class WeightsMismatchError(BadInputError):
    """State-dict keys or shapes do not match the architecture."""


class NonFiniteWeightsError(BadInputError):
    """A weight tensor holds NaN or Inf."""

    default_hint = "the checkpoint is damaged or the training diverged; use an earlier checkpoint"


class UnknownArchitectureError(BadInputError):
    """The architecture name is not a torchvision builder nor a timm model."""


class HeadNotFoundError(BadInputError):
    """No classification head could be located in the model."""


class OutputExistsError(BadInputError):
    """The output path exists and --overwrite was not given (or it is being written right now)."""

    default_hint = "allow overwriting to replace it, or choose another output path"


class OutputNotWritableError(BadInputError):
    """The output location cannot be written."""


class ModelDirError(BadInputError):
    """A model directory is missing files or its config.json is invalid."""


class DataError(BadInputError):
    """A data folder or data file is unusable (unreadable image, empty class, wrong classes)."""


class InputShapeError(BadInputError):
    """An input tensor has the wrong dtype, rank or channel count."""


class ExportError(BadInputError):
    """The model cannot be exported as asked (unsupported op, opset, size)."""


class ArtifactError(BadInputError):
    """An exported artifact is unreadable, tampered with, or built for another runtime."""


class MetadataMissingError(ArtifactError):
    """An artifact carries no rehead metadata (exported by another tool)."""


class LineageError(BadInputError):
    """An artifact was exported from another model than the model directory it is checked against."""

    default_hint = "pass the model directory the artifact was exported from, or cross_check=True to compare anyway"


# --- missing dependency or hardware: exit 3 --------------------------------------------------
class MissingDependencyError(ReheadError):
    """An optional dependency is not installed."""

    exit_code = 3


class WeightsUnavailableError(ReheadError):
    """Pretrained weights named by the user are not in the library's cache and cannot be downloaded."""

    exit_code = 3
    default_hint = "place the file in the cache folder the message names, or run where the network is reachable"


class DiskFullError(ReheadError):
    """A write ran out of room (no space left, a file-size limit, a disk quota). Nothing was
    published: the previous artifact, if any, is intact and no partial file is left."""

    exit_code = 3
    default_hint = "free space on that file system (or raise the limit) and run again, or choose another output folder"


class HardwareUnavailableError(ReheadError):
    """The requested device (a CUDA GPU) is not available."""

    exit_code = 3
    default_hint = "run on a machine with an NVIDIA GPU and driver, or choose the cpu device"


# --- a validation gate failed: exit 1 --------------------------------------------------------
class GateFailedError(ReheadError):
    """A parity or latency gate failed; the report says which and by how much."""

    exit_code = 1
    default_hint = "open the report for per-output and per-slice errors"


class BundleMismatchError(ReheadError):
    """A bundle does not match its manifest: a file changed, missing, extra, renamed, a symlink,
    a path leaving the bundle, or a manifest that is not a bundle manifest. The message names the file."""

    exit_code = 1
    default_hint = "do not run this bundle: re-create it with 'rehead package' from the validated artifacts"


# --- our bug: exit 4 -------------------------------------------------------------------------
class InternalError(ReheadError):
    """An invariant of rehead itself broke: please report it."""

    exit_code = 4
    default_hint = "this is a bug in rehead; please report it with the traceback"


def require(module: str, *, extra: str = "cpu", purpose: str = "") -> object:
    """Import an optional dependency lazily, or raise ``MissingDependencyError`` naming the extra.

    Args:
        module: the module to import.
        extra: the rehead extra that installs it, for the hint (default ``cpu``).
        purpose: what it is needed for, said in the message (default none).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module} is not installed{what} ({exc})",
            hint=f'pip install "rehead[{extra}]"',
        ) from exc
