"""Data sources: image folders, the bundled digits, preprocessing from a model's config."""

from toolkit.data.digits import DIGIT_NAMES, digits_tensors, digits_uint8
from toolkit.data.images import IMAGE_EXTENSIONS, list_class_images, load_image, preprocess_image
from toolkit.data.samples import load_samples

__all__ = [
    "DIGIT_NAMES",
    "IMAGE_EXTENSIONS",
    "digits_tensors",
    "digits_uint8",
    "list_class_images",
    "load_image",
    "load_samples",
    "preprocess_image",
]
