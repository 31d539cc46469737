"""What one ONNX export works on (``ExportJob``) and the step that gathers it (``prepare``):
the settings, the module, the check images, the calibration and held-out images. The export's
steps (``converters.onnx.export``) and its fp16/INT8 variant (``converters.onnx.variant``) read it."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
from torch import nn

from converters.check_inputs import default_check_inputs
from converters.int8.calibration import (
    Calibration,
    calibration_samples,
    choose_calibration,
    heldout_samples,
    recorded_data,
)
from converters.int8.search import Heldout
from converters.onnx import checks as _checks
from converters.onnx.bake import BakedPreprocess, to_uint8_nhwc
from converters.onnx.options import OnnxExportOptions
from toolkit.progress import Progress
from toolkit.records import ModelConfig


@dataclasses.dataclass(frozen=True)
class ExportJob:
    """One export: ``options``, the model (``module`` as loaded; ``net``, what is exported: the
    module behind baked preprocessing when asked), the check ``images`` in the graph's input
    form, the progress ``steps``, and for INT8 the ``calibration`` choice, its images
    (``calib_x``, preprocessed NCHW) and the accuracy-aware search's ``held``-out images."""

    options: OnnxExportOptions
    config: ModelConfig
    module: nn.Module
    net: nn.Module
    images: np.ndarray
    steps: Progress
    calibration: Calibration | None = None
    calib_x: torch.Tensor | None = None
    held: Heldout | None = None

    def model_input(self, x: torch.Tensor) -> np.ndarray:
        """Preprocessed images in the graph's input form (uint8 NHWC when preprocessing is baked).

        Args:
            x: preprocessed NCHW images.
        """
        if self.options.bake_preprocess:
            x = to_uint8_nhwc(x, self.config.preprocessing)
        return np.ascontiguousarray(x.numpy())


def prepare(
    module: nn.Module, config: ModelConfig, options: OnnxExportOptions, steps: Progress
) -> tuple[ExportJob, list[str]]:
    """The export's inputs, and a note when the checks run on random images only.

    The check images are those ``rehead validate`` uses by default (held-out images of the data
    the lineage records, else seeded random images: ``converters.check_inputs``); with ``int8``
    the calibration images (``choose_calibration``), and with ``min_agreement`` the held-out
    images with eager's logits on them (``heldout``, else the calibration data's val/test split).

    Args:
        module: the model as loaded.
        config: the model's config.
        options: what to export.
        steps: the progress the export reports on.
    """
    net: nn.Module = BakedPreprocess(module, config.preprocessing).eval() if options.bake_preprocess else module
    checked = default_check_inputs(config)
    notes = []
    if checked.note and recorded_data(config) is not None:
        notes.append(f"checked on random inputs only: {checked.note}")
    job = ExportJob(options, config, module, net, checked.images, steps)
    if options.bake_preprocess:
        job = dataclasses.replace(job, images=job.model_input(torch.from_numpy(checked.images)))
    if options.int8:
        calibration = choose_calibration(options.calib, config)
        calib_x = calibration_samples(calibration.source, config, options.calib_samples)
        job = dataclasses.replace(job, calibration=calibration, calib_x=calib_x)
        if options.min_agreement is not None:
            source = options.heldout if options.heldout is not None else calibration.source
            job = dataclasses.replace(job, held=_heldout(job, source))
    return job, notes


def _heldout(job: ExportJob, source: str | os.PathLike[str]) -> Heldout:
    """Held-out images (the model's input form), their labels and eager's logits on them."""
    x, labels, where = heldout_samples(source, job.config, job.options.heldout_samples)
    images = job.model_input(x)
    return Heldout(
        images=images,
        labels=labels.numpy(),
        reference=_checks.eager_outputs(job.net, images),
        new_classes=job.config.head.new_indices,
        kept_classes=job.config.head.kept_indices,
        source=where,
    )
