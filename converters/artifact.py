"""The artifact registry: what each format rehead writes and runs is, said in one place.

A format is one folder under ``converters/`` plus one ``Format`` entry here: its kind (the name
a bundle manifest records), its file suffixes, the backend that runs it, its Triton platform and
the module of its folder that answers for a file of it (``converters/<format>/artifact.py``).
That module implements four functions, imported only when a file of the format is handled:

- ``open_runner(path, *, device, threads, prep, **options) -> Runner``: the runner that executes it;
- ``companions(path) -> list[tuple[Path, str]]``: the files that travel with it (external data,
  a sidecar), as (source, name relative to the artifact's folder); raises ``ArtifactError``
  when one is missing or unsafe;
- ``precision(path) -> str``: ``fp32``, ``fp16``, ``bf16`` or ``int8``;
- ``recorded_model(path) -> dict | None``: the model record rehead stored in it (None: no record);
- and optionally ``size(path) -> int``, bytes on disk with the data files it loads.

Everything else (lineage, the runner registry, the bundle, the Predictor, the Triton writer,
reports) asks here; no other library module spells a suffix. Adding a format: write its folder,
add its entry with ``register_format`` (below, or from a plugin), expose it in the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

from toolkit.errors import InvalidArgumentError, LineageError, MetadataMissingError


@dataclass(frozen=True)
class Format:
    """One artifact format.

    Args:
        kind: the name a bundle manifest records (``onnx``, ``tensorrt``, ``pt2``).
        suffixes: file suffixes, lower case, with the dot; the first is the one exports write.
        backend: the runtime that runs it, as the Predictor names it (``onnxruntime``).
        module: the format folder's module implementing the functions above.
        triton: Triton's ``(platform or backend, file name in the version folder)``, or None
            where Triton cannot serve the format.
    """

    kind: str
    suffixes: tuple[str, ...]
    backend: str
    module: str
    triton: tuple[str, str] | None = None

    def hooks(self) -> ModuleType:
        """The format folder's module (imported on first use)."""
        return import_module(self.module)


_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> None:
    """Add (or replace) a format; its suffixes must not belong to another kind.

    Args:
        fmt: the entry.
    """
    for other in _FORMATS.values():
        clash = set(other.suffixes) & set(fmt.suffixes)
        if other.kind != fmt.kind and clash:
            raise ValueError(f"suffix {sorted(clash)} already belongs to format '{other.kind}'")
    _FORMATS[fmt.kind] = fmt


# The formats rehead ships, one entry each; the first suffix is the one an export writes.
_ONNX_TRITON = ("onnxruntime_onnx", "model.onnx")
register_format(Format("onnx", (".onnx",), "onnxruntime", "converters.onnx.artifact", triton=_ONNX_TRITON))
_ENGINE = (".engine", ".plan")
register_format(
    Format("tensorrt", _ENGINE, "tensorrt", "converters.tensorrt.artifact", triton=("tensorrt_plan", "model.plan"))
)
register_format(Format("pt2", (".pt2",), "pt2", "converters.pt2.artifact"))
register_format(
    Format("openvino", (".xml",), "openvino", "converters.openvino.artifact", triton=("openvino", "model.xml"))
)


def formats() -> tuple[Format, ...]:
    """Every registered format, in registration order."""
    return tuple(_FORMATS.values())


def suffixes() -> tuple[str, ...]:
    """Every registered suffix, sorted."""
    return tuple(sorted(s for fmt in _FORMATS.values() for s in fmt.suffixes))


def find_format(path: str | os.PathLike[str]) -> Format | None:
    """The format of ``path`` by its suffix, or None.

    Args:
        path: an artifact's path (it need not exist).
    """
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in _FORMATS.values() if suffix in fmt.suffixes), None)


def format_of(path: str | os.PathLike[str]) -> Format:
    """The format of ``path``; ``InvalidArgumentError`` for a suffix no format has.

    Args:
        path: an artifact's path.
    """
    fmt = find_format(path)
    if fmt is None:
        raise InvalidArgumentError(
            f"'{Path(path).name}' is no artifact rehead knows (suffix '{Path(path).suffix}')",
            hint=f"artifacts end in one of {', '.join(suffixes())}",
        )
    return fmt


def by_kind(kind: str) -> Format:
    """The format named ``kind``; ``InvalidArgumentError`` for an unknown one.

    Args:
        kind: a manifest's artifact kind.
    """
    if kind not in _FORMATS:
        raise InvalidArgumentError(f"unknown artifact kind '{kind}'", hint=f"one of {', '.join(_FORMATS)}")
    return _FORMATS[kind]


def companions(path: Path) -> list[tuple[Path, str]]:
    """The files ``path`` needs beside it, as (source, name relative to its folder).

    Args:
        path: an artifact of a registered format.
    """
    return list(format_of(path).hooks().companions(path))


def precision(path: Path) -> str:
    """``fp32``, ``fp16``, ``bf16`` or ``int8``: what the file records, else what its graph shows.

    Args:
        path: an artifact; a file of no registered format is ``fp32``.
    """
    fmt = find_format(path)
    return str(fmt.hooks().precision(path)) if fmt else "fp32"


def recorded_model(path: Path) -> dict[str, Any] | None:
    """The model record rehead stored in the artifact, or None when it carries none.

    Args:
        path: an artifact.
    """
    fmt = find_format(path)
    if fmt is None:
        return None
    try:
        record = fmt.hooks().recorded_model(path)
    except MetadataMissingError:
        return None
    return dict(record) if isinstance(record, dict) else None


def recorded_weights(path: Path) -> str | None:
    """The ``weights_sha256`` rehead recorded in the artifact (its lineage), or None.

    Args:
        path: an artifact.
    """
    value = (recorded_model(path) or {}).get("weights_sha256")
    return str(value) if value else None


def refuse_other_weights(path: Path, recorded: str | None, expected: str | None, *, hint: str, param: str) -> None:
    """``LineageError`` when the artifact at ``path`` records other weights than ``expected``
    (nothing to compare when either is unknown).

    Args:
        path: the artifact (named in the message).
        recorded: the ``weights_sha256`` it records (``recorded_weights``), or None.
        expected: the model directory's ``weights_sha256``, or None.
        hint: what to do instead, said after the message.
        param: the argument at fault.
    """
    if recorded and expected and recorded != expected:
        raise LineageError(
            f"'{path.name}' was exported from weights {recorded[:12]}, but the model directory holds "
            f"weights {expected[:12]}",
            hint=hint,
            param=param,
        )


def size(path: Path) -> int:
    """Bytes on disk, with the data files the artifact loads (ONNX external data).

    Args:
        path: an artifact; 0 when it is not a file.
    """
    if not path.is_file():
        return 0
    fmt = find_format(path)
    hook = getattr(fmt.hooks(), "size", None) if fmt else None
    return int(hook(path)) if hook else path.stat().st_size


def open_artifact(path: Path, *, device: str, threads: int | None, prep: Any = None, **options: Any) -> Any:
    """The format's runner for ``path`` (``converters.runners.open_runner`` is the public door).

    Args:
        path: an artifact of a registered format.
        device: ``cpu`` or ``cuda[:N]``.
        threads: intra-op threads, None for the runtime's default.
        prep: the model's ``Preprocessing`` or None.
        options: format-specific runner options (``ort_provider`` for ONNX).
    """
    return format_of(path).hooks().open_runner(path, device=device, threads=threads, prep=prep, **options)
