"""Data sources: image folders, the bundled digits, preprocessing from a model's config."""

from toolkit.data.images import IMAGE_EXTENSIONS, list_class_images, load_image, preprocess_image

__all__ = ["IMAGE_EXTENSIONS", "list_class_images", "load_image", "preprocess_image"]
