"""``Predictor``: run a verified bundle on images, preprocessed exactly as validation did.

``Predictor.from_bundle(path)`` verifies the bundle (an archive is checked, then extracted into
a temporary directory removed on ``close``), picks the best artifact this machine can run (``toolkit.deploy.choice``)
and opens it with validation's own runner (``converters.runners.registry.open_runner``), so that
the logits it returns are the ones validation measured:

1. a TensorRT engine, when TensorRT and a CUDA GPU are present and the engine's sidecar says it
   was built for them (``converters.tensorrt.record.check_compatible``);
2. an ONNX file with ONNX Runtime, on CUDA when onnxruntime-gpu and a GPU are present, else on
   the CPU (fp32 preferred on the CPU, fp16 on a GPU). On an x86 CPU with OpenVINO installed,
   OpenVINO competes for the same precision: the ONNX file run by OpenVINO, and the bundle's
   OpenVINO IRs of that precision, are timed side by side with ONNX Runtime at batch 1 (a few
   interleaved rounds, ``converters.timing``) and the fastest runs; the choice and the times are
   in ``notes``. Runtime and precision are chosen by measurement on this machine, never assumed;
3. an OpenVINO IR alone (no ONNX in the bundle), on the CPU;
4. a ``.pt2`` package (AOTInductor).

Artifacts that passed validation come before forced ones. Images (PIL images, file paths,
uint8 HWC arrays) go through ``toolkit.data.images`` with the bundle's ``Preprocessing``;
float32 CHW/NCHW arrays are taken as already preprocessed. Batches are cut to the sizes the
artifact accepts (a fixed-batch artifact gets its batch padded); probabilities are a float64
softmax of the logits.
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from toolkit._args import positive_int
from toolkit._device import on_device
from toolkit.deploy.choice import choose
from toolkit.deploy.manifest import BundleArtifact, Manifest
from toolkit.deploy.verification import is_temporary, open_bundle
from toolkit.errors import InputShapeError, InvalidArgumentError
from toolkit.records import Preprocessing

#: the largest batch sent to a dynamic-batch artifact at once
DEFAULT_MAX_BATCH = 32


def _remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Predictor:
    """Top-k predictions from a verified bundle; see the module docstring.

    Attributes: ``class_names`` (output order), ``preprocessing``, ``backend`` (``tensorrt`` |
    ``onnxruntime`` | ``openvino`` | ``pt2``), ``artifact`` (the file it runs), ``device``, ``input_shape``
    (C, H, W of one preprocessed image), ``manifest``, ``root`` (the verified directory),
    ``notes`` (why better artifacts were passed over), ``batch_range`` (smallest and largest
    batch the artifact takes at once).
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        entry: BundleArtifact,
        *,
        backend: str,
        device: str,
        threads: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        notes: tuple[str, ...] = (),
        temporary: bool = False,
        _opened: Any = None,
    ) -> None:
        from converters.runners.registry import open_runner

        self._runner: Any = _opened  # the runner the CPU runtimes' timing already loaded: closed on failure
        # the extracted copy of an archive goes with the predictor, even if close() is never called
        self._cleanup = weakref.finalize(self, _remove, str(root)) if temporary else None
        self.root = root
        self.manifest = manifest
        self.entry = entry
        self.backend = backend
        self.device = device
        self.notes = notes
        self.class_names: tuple[str, ...] = manifest.class_names
        self.preprocessing: Preprocessing = manifest.prep
        self.input_shape: tuple[int, int, int] = self.preprocessing.input_shape(1)[1:]  # type: ignore[assignment]
        self.artifact = root / entry.file
        try:
            if self._runner is None:
                runtime = "openvino" if backend == "openvino" and entry.kind == "onnx" else None
                with on_device(device):
                    self._runner = open_runner(
                        self.artifact, device=device, threads=threads, prep=self.preprocessing, runtime=runtime
                    )
                    self._runner.load()
            self.output_name = "logits" if "logits" in self._runner.output_names else self._runner.output_names[0]
            self.batch_range = self._batch_range(positive_int(max_batch, "max_batch", example="max_batch=32"))
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike[str],
        *,
        backend: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        manifest_sha256: str | None = None,
    ) -> Predictor:
        """Verify the bundle at ``path`` and open its best artifact.

        Raises ``BundleMismatchError`` (exit 1) when the bundle does not verify.

        Args:
            path: the bundle, a directory or an archive.
            backend: ``tensorrt`` | ``onnxruntime`` | ``openvino`` | ``pt2`` (default None: the best
                present, see the module doc).
            device: ``cpu`` | ``cuda`` | ``cuda:N`` (default None: the GPU when the chosen backend can use one).
            threads: the runtime's intra-op threads (ONNX Runtime's, OpenVINO's; also those the CPU
                runtimes are timed with when they compete; default None: the runtime's choice).
            max_batch: the largest batch run at once on a dynamic-batch artifact.
            manifest_sha256: refuse the bundle unless its manifest has this digest (default None).
        """
        positive_int(max_batch, "max_batch", example="max_batch=32")  # before any verification or timing
        root, manifest = open_bundle(path, manifest_sha256=manifest_sha256)
        temporary = is_temporary(root, path)
        try:
            entry, chosen, dev, notes, opened = choose(root, manifest, backend=backend, device=device, threads=threads)
        except BaseException:
            if temporary:
                _remove(str(root))
            raise
        return cls(
            root, manifest, entry, backend=chosen, device=dev, threads=threads, max_batch=max_batch,
            notes=notes, temporary=temporary, _opened=opened,
        )

    # --- batching ------------------------------------------------------------------------------------

    def _batch_range(self, max_batch: int) -> tuple[int, int]:
        fixed = getattr(self._runner, "fixed_batch", None)
        if fixed:
            return fixed, fixed
        if self.backend == "tensorrt":
            from converters.tensorrt.record import read_record

            profile = read_record(self.artifact).profile
            return int(profile.min[0]), int(profile.max[0])
        return 1, max_batch

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW (preprocessed) -> float32 [N, classes], run in chunks the artifact accepts.

        Args:
            batch: preprocessed images, float32 NCHW.
        """
        if self._runner is None:
            raise InvalidArgumentError("this predictor is closed", hint="open a new one with from_bundle")
        array = np.asarray(batch)
        expected = (*self.input_shape,)
        if array.dtype != np.float32 or array.ndim != 4 or tuple(array.shape[1:]) != expected:
            raise InputShapeError(
                f"input {array.dtype}{list(array.shape)} does not fit: "
                f"expected float32[N, {', '.join(map(str, expected))}] (NCHW, preprocessed)",
                hint="give images (paths, PIL images, uint8 HWC arrays) to predict, or preprocess them first",
            )
        low, high = self.batch_range
        outputs = []
        for start in range(0, array.shape[0], high):
            chunk = array[start : start + high]
            n = chunk.shape[0]
            if n < low:
                # a fixed-batch (or min-batch) artifact: pad with copies of the last image, drop their rows
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], low - n, axis=0)])
            # cuda:N is made current while it runs: streams, events and graphs belong to it
            with on_device(self.device):
                result = self._runner.run(np.ascontiguousarray(chunk))
            outputs.append(np.asarray(result[self.output_name], dtype=np.float32)[:n])
        if not outputs:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.concatenate(outputs)

    # --- images --------------------------------------------------------------------------------------

    def preprocess(self, images: Any) -> np.ndarray:
        """Images -> float32 NCHW as validation fed the artifact.

        Args:
            images: one image or a sequence of them; an image is a PIL image, a file path, a uint8
                (H, W, C) or (H, W) array, or a float32 (C, H, W) array already preprocessed. A 4-D
                array is a batch: uint8 NHWC pixels or float32 NCHW preprocessed.
        """
        items = self._items(images)
        if not items:
            raise InvalidArgumentError("no images given", hint="give at least one image", param="images")
        return np.stack([self._one(item) for item in items]).astype(np.float32, copy=False)

    def _items(self, images: Any) -> list[Any]:
        if isinstance(images, np.ndarray):
            if images.ndim == 4:
                if images.dtype == np.float32 and tuple(images.shape[1:]) == self.input_shape:
                    return list(images)
                if images.dtype == np.uint8:
                    return list(images)
                raise InputShapeError(
                    f"a batch array {images.dtype}{list(images.shape)} is neither uint8 NHWC pixels nor "
                    f"float32 NCHW of shape [N, {', '.join(map(str, self.input_shape))}]"
                )
            return [images]
        if isinstance(images, (str, os.PathLike)) or _is_pil(images):
            return [images]
        if isinstance(images, Iterable):
            return list(images)
        raise InvalidArgumentError(
            f"cannot read an image from {type(images).__name__}",
            hint="give paths, PIL images or numpy arrays",
            param="images",
        )

    def _one(self, item: Any) -> np.ndarray:
        from toolkit.data.images import load_image, preprocess_image

        prep = self.preprocessing
        if isinstance(item, (str, os.PathLike)):
            return preprocess_image(load_image(item, prep.channels), prep).numpy()
        if _is_pil(item):
            pixels = np.array(item.convert("L" if prep.channels == 1 else "RGB"), dtype=np.uint8)
            pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
            return preprocess_image(pixels, prep).numpy()
        if isinstance(item, np.ndarray):
            if item.dtype == np.uint8 and item.ndim in (2, 3):
                pixels = item[:, :, None] if item.ndim == 2 else item
                if pixels.shape[2] not in (1, 3, 4):
                    raise InputShapeError(f"uint8 image of shape {list(item.shape)} is not (H, W, C) with C 1, 3 or 4")
                if pixels.shape[2] == 4:
                    pixels = pixels[:, :, :3]  # RGBA: drop alpha as PIL's convert("RGB") does
                if not pixels.flags.writeable:  # np.asarray(PIL image) is read-only; torch warns on those
                    pixels = pixels.copy()
                return preprocess_image(pixels, prep).numpy()
            if item.dtype == np.float32 and tuple(item.shape) == self.input_shape:
                return item
            raise InputShapeError(
                f"array {item.dtype}{list(item.shape)} is neither a uint8 (H, W, C) image nor a preprocessed "
                f"float32 array of shape {list(self.input_shape)}",
                hint="convert pixels to uint8, or preprocess float images with the bundle's preprocessing",
            )
        raise InvalidArgumentError(
            f"cannot read an image from {type(item).__name__}", hint="give paths, PIL images or numpy arrays",
            param="images",
        )

    # --- predictions ---------------------------------------------------------------------------------

    def probabilities(self, images: Any) -> np.ndarray:
        """float64 softmax over the classes, [N, classes].

        Args:
            images: images as ``preprocess`` takes them.
        """
        logits = self.logits(self.preprocess(images)).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def predict(self, images: Any, *, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Per image, the ``top_k`` (label, probability) pairs, most probable first (``top_k`` is
        capped at the number of classes; ties keep output order).

        Args:
            images: images as ``preprocess`` takes them.
            top_k: how many pairs per image (default 5).
        """
        k = min(positive_int(top_k, "top_k", example="top_k=5"), len(self.class_names))
        probs = self.probabilities(images)
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[i], float(row[i])) for i in idx] for row, idx in zip(probs, order, strict=True)]

    # --- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the runtime session and remove an extracted archive copy."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Predictor({self.entry.file!r}, backend={self.backend!r}, device={self.device!r})"


def _is_pil(value: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(value, Image.Image)
