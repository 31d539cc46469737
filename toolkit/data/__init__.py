"""Data sources: image folders, CSV manifests, the bundled digits, preprocessing from a model's config.

Names are imported on first use; the ``TYPE_CHECKING`` block names the same imports for
readers and type checkers (a test keeps the two lists equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from toolkit.data.augment import AUGMENTATIONS as AUGMENTATIONS
    from toolkit.data.augment import augment_batch as augment_batch
    from toolkit.data.decode import decode_images as decode_images
    from toolkit.data.digits import DIGIT_NAMES as DIGIT_NAMES
    from toolkit.data.digits import digits_tensors as digits_tensors
    from toolkit.data.digits import digits_uint8 as digits_uint8
    from toolkit.data.images import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
    from toolkit.data.images import list_class_images as list_class_images
    from toolkit.data.images import load_image as load_image
    from toolkit.data.images import preprocess_image as preprocess_image
    from toolkit.data.manifest import Manifest as Manifest
    from toolkit.data.manifest import ManifestRow as ManifestRow
    from toolkit.data.manifest import is_manifest as is_manifest
    from toolkit.data.manifest import read_manifest as read_manifest
    from toolkit.data.samples import load_samples as load_samples
    from toolkit.data.training import TrainingData as TrainingData
    from toolkit.data.training import check_folder_classes as check_folder_classes
    from toolkit.data.training import digit_classes as digit_classes
    from toolkit.data.training import load_training_data as load_training_data
    from toolkit.data.training import read_class_map as read_class_map
    from toolkit.data.unlabelled import load_images as load_images

_EXPORTS = {
    "AUGMENTATIONS": "toolkit.data.augment",
    "augment_batch": "toolkit.data.augment",
    "decode_images": "toolkit.data.decode",
    "DIGIT_NAMES": "toolkit.data.digits",
    "digits_tensors": "toolkit.data.digits",
    "digits_uint8": "toolkit.data.digits",
    "IMAGE_EXTENSIONS": "toolkit.data.images",
    "list_class_images": "toolkit.data.images",
    "load_image": "toolkit.data.images",
    "preprocess_image": "toolkit.data.images",
    "Manifest": "toolkit.data.manifest",
    "ManifestRow": "toolkit.data.manifest",
    "is_manifest": "toolkit.data.manifest",
    "read_manifest": "toolkit.data.manifest",
    "load_samples": "toolkit.data.samples",
    "TrainingData": "toolkit.data.training",
    "check_folder_classes": "toolkit.data.training",
    "digit_classes": "toolkit.data.training",
    "load_training_data": "toolkit.data.training",
    "read_class_map": "toolkit.data.training",
    "load_images": "toolkit.data.unlabelled",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
