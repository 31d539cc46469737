"""Deployment, the application layer's last stage: bundles (package, verify), the ``Predictor``
that runs one, and (in ``triton``/``serve``) serving it.

Names are imported lazily so that ``import toolkit.deploy`` stays light (no torch, no ONNX
Runtime until a predictor is opened).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Manifest": "toolkit.deploy.bundle",
    "BundleArtifact": "toolkit.deploy.bundle",
    "BundleFile": "toolkit.deploy.bundle",
    "package": "toolkit.deploy.bundle",
    "verify": "toolkit.deploy.bundle",
    "open_bundle": "toolkit.deploy.bundle",
    "Predictor": "toolkit.deploy.predictor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'toolkit.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
