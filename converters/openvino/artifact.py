"""An OpenVINO IR (``.xml`` + ``.bin``) as an artifact: runner, companions, precision, record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.errors import ArtifactError

#: where rehead's record sits in the IR's runtime info (``<rt_info><rehead><record value=...>``)
RT_KEY = ("rehead", "record")
#: the sha256 of the ``.bin`` the ``.xml`` was saved with (``<rt_info><rehead><bin_sha256>``)
BIN_KEY = ("rehead", "bin_sha256")
#: the sha256 of the graph (layers and edges) rehead saved (``<rt_info><rehead><graph_sha256>``)
GRAPH_KEY = ("rehead", "graph_sha256")


def bin_path(xml: Path) -> Path:
    """The weights file of an IR: same name, ``.bin``.

    Args:
        xml: the IR's ``.xml``.
    """
    return xml.with_suffix(".bin")


def open_runner(
    path: Path, *, device: str, threads: int | None, prep: Any = None, ov_precision: str | None = None, **_: Any
) -> Any:
    """OpenVINO on a device at an inference precision.

    Args:
        path: the IR's ``.xml``.
        device: ``cpu`` or an OpenVINO device name.
        threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's choice).
        prep: the model's preprocessing, for a graph that takes uint8 pixels (default None).
        ov_precision: the inference precision (default None: ``f32``).
        **_: other formats' options, ignored.
    """
    from converters.openvino.runner import OpenVinoRunner

    return OpenVinoRunner(
        path,
        device=device,
        threads=threads,
        ov_precision=ov_precision or "f32",
        precision=precision(path),
        preprocessing=prep,
    )


def companions(path: Path) -> list[tuple[Path, str]]:
    """The ``.bin`` beside the ``.xml``, checked to be the one the IR was saved with.

    Args:
        path: the IR's ``.xml``.
    """
    return [(check_weights(path), bin_path(path).name)]


def check_weights(path: Path) -> Path:
    """The IR's ``.bin``: present, and (when rehead recorded its sha256) the one written with
    this ``.xml``; ``ArtifactError`` otherwise (a ``.bin`` of another model would load silently).

    An IR another OpenVINO tool re-saved from rehead's with a changed graph (NNCF, fp16
    compression) still carries rehead's stamp of the old ``.bin``: its graph no longer matches
    the stamped one, so the stamp (and rehead's record) is set aside, not held against it.

    Args:
        path: the IR's ``.xml``.
    """
    weights = bin_path(path)
    if not weights.is_file():
        raise ArtifactError(
            f"'{path.name}' needs its weights '{weights.name}' beside it, which is missing",
            hint="copy the .bin with the .xml (they travel together)",
        )
    root = _parse(path)
    recorded = _value(root, BIN_KEY)
    if recorded is not None and _stamp_is_current(root):
        from toolkit.models.model_dir import sha256_file

        actual = sha256_file(weights)
        if actual != recorded:
            raise ArtifactError(
                f"'{weights.name}' is not the weights '{path.name}' was saved with "
                f"(sha256 {actual[:12]}, recorded {recorded[:12]})",
                hint="copy the .xml and .bin of one export together, or export again",
            )
    return weights


def _parse(path: Path) -> Any:
    """The ``.xml``'s root element (the text alone; weights not loaded)."""
    import xml.etree.ElementTree as ET

    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ArtifactError(f"cannot read OpenVINO IR '{path.name}': {exc}", hint="re-export it") from exc


def _value(root: Any, key: tuple[str, str]) -> str | None:
    """A value of the IR's runtime info."""
    node = root.find(f"rt_info/{key[0]}/{key[1]}")
    return None if node is None else node.attrib.get("value")


def _graph_sha256(root: Any) -> str:
    """The sha256 of the IR's graph (its layers and edges, canonical XML): what another tool's
    re-save changes when it changes the model, and keeps when it does not."""
    import hashlib
    import xml.etree.ElementTree as ET

    digest = hashlib.sha256()
    for tag in ("layers", "edges"):
        node = root.find(tag)
        if node is not None:
            digest.update(ET.canonicalize(ET.tostring(node, encoding="unicode"), strip_text=True).encode())
    return digest.hexdigest()


def _stamp_is_current(root: Any) -> bool:
    """Whether rehead's stamp describes this graph (True for an IR stamped before graphs were)."""
    recorded = _value(root, GRAPH_KEY)
    return recorded is None or recorded == _graph_sha256(root)


def stamp_weights(path: Path) -> None:
    """Record the sha256 of the IR's ``.bin`` and of its graph in its ``.xml`` (runtime info),
    once both are written.

    Args:
        path: the IR's ``.xml``, rewritten in place.
    """
    import xml.etree.ElementTree as ET

    from toolkit.models.model_dir import sha256_file

    tree = ET.parse(path)
    rt_info = tree.getroot().find("rt_info")
    if rt_info is None:
        rt_info = ET.SubElement(tree.getroot(), "rt_info")
    group = rt_info.find(BIN_KEY[0])
    if group is None:
        group = ET.SubElement(rt_info, BIN_KEY[0])
    for key, value in ((BIN_KEY, sha256_file(bin_path(path))), (GRAPH_KEY, _graph_sha256(tree.getroot()))):
        for old in group.findall(key[1]):
            group.remove(old)
        ET.SubElement(group, key[1], value=value)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def read_record(path: Path) -> dict[str, Any] | None:
    """rehead's record stored in the IR's runtime info, or None: an IR another tool wrote, or
    re-saved from rehead's with another graph (the record describes the IR rehead wrote).

    Args:
        path: the IR's ``.xml`` (only its text is read).
    """
    return _record(_parse(path), path)


def _record(root: Any, path: Path) -> dict[str, Any] | None:
    """``read_record`` of an already parsed ``.xml``."""
    value = _value(root, RT_KEY)
    if value is None or not _stamp_is_current(root):
        return None
    try:
        record = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"'{path.name}' holds a damaged rehead record: {exc}", hint="re-export it") from exc
    return record if isinstance(record, dict) else None


def recorded_model(path: Path) -> dict[str, Any] | None:
    """The model record (``weights_sha256``, class names, ...) rehead stored in the IR.

    Args:
        path: the IR's ``.xml``.
    """
    return read_record(path)


def precision(path: Path) -> str:
    """The precision rehead recorded (``fp32``, ``fp16`` weights, ``int8``), else what the graph
    shows: ``int8`` with a FakeQuantize or 8-bit (or 4-bit) constants, ``fp16`` with f16 constants
    (OpenVINO's ``save_model`` compresses weights to fp16 by default), else ``fp32``.

    Args:
        path: the IR's ``.xml``.
    """
    root = _parse(path)  # once: the record, the stamp's graph hash and the graph's precision
    recorded = (_record(root, path) or {}).get("precision")
    if recorded is not None:
        text = str(recorded).lower()
        return text if text in ("fp32", "fp16", "int8") else "fp32"
    return _graph_precision(root)


def _graph_precision(root: Any) -> str:
    constants: set[str] = set()
    for layer in root.iter("layer"):
        if layer.get("type") == "FakeQuantize":
            return "int8"
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None:
            constants.add(str(data.get("element_type", "")))
    if constants & {"i8", "u8", "i4", "u4"}:
        return "int8"
    return "fp16" if "f16" in constants else "fp32"


def size(path: Path) -> int:
    """The ``.xml`` and its ``.bin``.

    Args:
        path: the IR's ``.xml``.
    """
    weights = bin_path(path)
    return path.stat().st_size + (weights.stat().st_size if weights.is_file() else 0)
