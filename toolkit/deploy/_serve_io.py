"""What ``rehead serve``'s model takes and answers, and how a batch of Triton requests is run.

Inputs (each request gives exactly one; both are batched along the first axis):

- ``images``: float32 [N, C, H, W], already preprocessed (what ``Predictor.preprocess`` returns);
- ``image_bytes``: BYTES [N, 1], each element one encoded image file (JPEG, PNG, anything PIL
  reads), decoded by ``toolkit.data.images.load_image`` and preprocessed by
  ``Predictor.preprocess``, which is how ``rehead predict`` and validation read image files.

Outputs: ``logits`` and ``probabilities`` float32 [N, classes]; ``top_k_labels`` BYTES [N, K]
(class names, UTF-8) and ``top_k_scores`` float32 [N, K] (their probabilities), most probable
first, ties in output order, as ``Predictor.predict`` orders them.

The requests of one dynamic batch run as one call of ``Predictor.logits``. PyTriton answers a
failed call with one error for every request in it, so a request whose image does not decode
fails the requests batched with it too; the error names the request and item.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from toolkit.errors import DataError, InputShapeError

TENSOR_INPUT = "images"
BYTES_INPUT = "image_bytes"
OUTPUTS = ("logits", "probabilities", "top_k_labels", "top_k_scores")
#: how many classes the top-k outputs hold by default
DEFAULT_TOP_K = 5


@dataclasses.dataclass(frozen=True)
class Answer:
    """One batch's outputs, split back per request by ``split``."""

    logits: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def split(self, sizes: Sequence[int]) -> list[dict[str, np.ndarray]]:
        """The outputs by name for each request, in order.

        Args:
            sizes: each request's number of images, in batch order.
        """
        bounds = np.cumsum([0, *sizes])
        arrays = dict(zip(OUTPUTS, (self.logits, self.probabilities, self.labels, self.scores), strict=True))
        return [{k: v[lo:hi] for k, v in arrays.items()} for lo, hi in itertools.pairwise(bounds)]


def decode(data: bytes, channels: int) -> np.ndarray:
    """One encoded image file's bytes -> (H, W, C) uint8, as ``load_image`` decodes a file.

    Args:
        data: the file's bytes.
        channels: 3 for RGB, 1 for greyscale.
    """
    from toolkit.data.images import load_image

    # load_image opens paths; PIL's Image.open reads a binary stream just the same
    return load_image(cast(Any, io.BytesIO(data)), channels)


def request_batch(request: Mapping[str, np.ndarray], predictor: Any, index: int = 0) -> np.ndarray:
    """One request's images as float32 NCHW, preprocessed.

    Args:
        request: the request's inputs by name: preprocessed pixels or encoded image files.
        predictor: the ``Predictor`` that preprocesses the images.
        index: the request's place in the batch, for errors (default 0).
    """
    given = [name for name in (TENSOR_INPUT, BYTES_INPUT) if name in request]
    if len(given) != 1:
        raise InputShapeError(
            f"request {index} gives {' and '.join(repr(g) for g in given) or 'no input'}: "
            f"expected exactly one of '{TENSOR_INPUT}' (float32 [N, C, H, W], preprocessed) and "
            f"'{BYTES_INPUT}' (BYTES [N, 1], encoded image files)",
            hint="send the image files' bytes as 'image_bytes', or preprocessed pixels as 'images'",
        )
    if given[0] == TENSOR_INPUT:
        return np.asarray(request[TENSOR_INPUT], dtype=np.float32)
    items = np.asarray(request[BYTES_INPUT], dtype=object).reshape(-1)
    pixels = []
    for item, data in enumerate(items):
        raw = bytes(data)
        try:
            pixels.append(decode(raw, predictor.preprocessing.channels))
        except DataError as exc:
            cause = exc.__cause__ or exc
            raise DataError(
                f"request {index}, image {item}: {len(raw)} bytes of '{BYTES_INPUT}' are not an image PIL can "
                f"decode ({type(cause).__name__}: {cause})",
                hint="send each image file's bytes unchanged (JPEG, PNG, ...), one file per element",
            ) from exc
    return np.asarray(predictor.preprocess(pixels), dtype=np.float32)


def answer(logits: np.ndarray, class_names: Sequence[str], top_k: int) -> Answer:
    """The outputs for a batch of logits; probabilities are a float64 softmax cast to float32, and
    the top-k order comes from the float64 values, as in ``Predictor.predict``.

    Args:
        logits: the batch's logits, [N, classes].
        class_names: the model's class names, for the labels.
        top_k: how many labels and scores per image (capped at the number of classes).
    """
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    k = min(top_k, len(class_names))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    names = np.array([name.encode("utf-8") for name in class_names], dtype=object)
    return Answer(
        logits=np.asarray(logits, dtype=np.float32),
        probabilities=probs.astype(np.float32),
        labels=names[order].reshape(len(logits), k),
        scores=np.take_along_axis(probs, order, axis=1).astype(np.float32),
    )


def run_requests(
    requests: Sequence[Mapping[str, np.ndarray]], predictor: Any, top_k: int
) -> tuple[list[dict[str, np.ndarray]], int]:
    """Run a dynamic batch of requests as one ``Predictor.logits`` call: the answers per request, and
    the batch size the model ran.

    Args:
        requests: the requests' inputs, each as ``request_batch`` takes them.
        predictor: the ``Predictor`` that runs them.
        top_k: how many labels and scores each image's answer holds.
    """
    batches = [request_batch(request, predictor, i) for i, request in enumerate(requests)]
    logits = predictor.logits(np.concatenate(batches) if batches else np.zeros((0, *predictor.input_shape), np.float32))
    return answer(logits, predictor.class_names, top_k).split([len(b) for b in batches]), int(logits.shape[0])


__all__ = ["BYTES_INPUT", "DEFAULT_TOP_K", "OUTPUTS", "TENSOR_INPUT", "Answer", "answer", "decode", "run_requests"]
