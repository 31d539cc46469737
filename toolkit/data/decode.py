"""``decode_images``: decode and preprocess image files, in DataLoader worker processes if asked.

Decoding is the slow part of loading a large folder or manifest; ``workers`` processes share it
(PyTorch's ``DataLoader``; 0 = this process). The result does not depend on the count: files
come back in the order given, preprocessing draws nothing at random, and the loader's own seed
comes from a generator seeded from ``seed``, never from the caller's global RNG. Each worker runs
one torch thread (``worker_init_fn``), so N workers use N cores rather than N x cores.

A file that cannot be read comes back from its worker as a value, not an exception, so that the
error the caller sees is the one-line ``DataError`` naming the file (a worker's exception would
reach the caller wrapped in a traceback).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from toolkit._args import positive_int
from toolkit.errors import DataError, InvalidArgumentError
from toolkit.records import Preprocessing


class _Files(torch.utils.data.Dataset[torch.Tensor | DataError]):
    def __init__(self, files: Sequence[Path], prep: Preprocessing) -> None:
        self.files = list(files)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor | DataError:
        from toolkit.data.images import load_image, preprocess_image

        try:
            return preprocess_image(load_image(self.files[i], self.prep.channels), self.prep)
        except DataError as exc:
            return exc


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


def _first(items: list[torch.Tensor | DataError]) -> list[torch.Tensor | DataError]:
    return items


def check_workers(workers: int) -> int:
    """``workers`` if it is an integer >= 0 (0: decode in this process); ``InvalidArgumentError`` otherwise.

    Args:
        workers: the number of decoding processes asked for.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidArgumentError(
            f"workers must be an integer >= 0, got {workers!r}",
            hint="0 decodes in this process; e.g. 4",
            param="workers",
        )
    return workers


def decode_images(
    files: Sequence[str | os.PathLike[str]],
    prep: Preprocessing,
    *,
    workers: int = 0,
    seed: int = 0,
    chunk: int = 64,
) -> list[torch.Tensor]:
    """Each file as a preprocessed (C, H, W) float32 tensor, in the order given.

    Raises the ``DataError`` of the first unreadable file.

    Args:
        files: the image files.
        prep: the model's preprocessing.
        workers: processes that decode (default 0: this process).
        seed: the seed of the worker loader's generator (default 0).
        chunk: files per worker task (default 64).
    """
    check_workers(workers)
    positive_int(chunk, "chunk")
    dataset = _Files([Path(f) for f in files], prep)
    if workers == 0 or len(dataset) <= chunk:
        items: list[torch.Tensor | DataError] = [dataset[i] for i in range(len(dataset))]
    else:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=chunk,
            num_workers=workers,
            collate_fn=_first,
            worker_init_fn=_one_thread,
            generator=torch.Generator().manual_seed(seed),
        )
        items = [item for batch in loader for item in batch]
    for item in items:
        if isinstance(item, DataError):
            raise item
    return [item for item in items if isinstance(item, torch.Tensor)]
