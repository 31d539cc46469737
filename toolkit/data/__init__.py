"""Data sources: image folders, CSV manifests, the bundled digits, preprocessing from a model's config."""

from toolkit.data.augment import AUGMENTATIONS, augment_batch
from toolkit.data.decode import decode_images
from toolkit.data.digits import DIGIT_NAMES, digits_tensors, digits_uint8
from toolkit.data.images import IMAGE_EXTENSIONS, list_class_images, load_image, preprocess_image
from toolkit.data.manifest import Manifest, ManifestRow, is_manifest, read_manifest
from toolkit.data.samples import load_samples
from toolkit.data.training import (
    TrainingData,
    check_folder_classes,
    digit_classes,
    load_training_data,
    read_class_map,
)
from toolkit.data.unlabelled import load_images

__all__ = [
    "AUGMENTATIONS",
    "DIGIT_NAMES",
    "IMAGE_EXTENSIONS",
    "Manifest",
    "ManifestRow",
    "TrainingData",
    "augment_batch",
    "check_folder_classes",
    "decode_images",
    "digit_classes",
    "digits_tensors",
    "digits_uint8",
    "is_manifest",
    "list_class_images",
    "load_image",
    "load_images",
    "load_samples",
    "load_training_data",
    "preprocess_image",
    "read_class_map",
    "read_manifest",
]
