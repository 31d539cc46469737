"""Deployment, the application layer's last stage: bundles (package, verify), the ``Predictor``
that runs one, and (in ``triton``/``serve``) serving it.

Names are imported lazily so that ``import toolkit.deploy`` stays light (no torch, no ONNX
Runtime until a predictor is opened).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from toolkit.deploy.bundle import package as package
    from toolkit.deploy.manifest import BundleArtifact as BundleArtifact
    from toolkit.deploy.manifest import BundleFile as BundleFile
    from toolkit.deploy.manifest import Manifest as Manifest
    from toolkit.deploy.predictor import Predictor as Predictor
    from toolkit.deploy.verification import open_bundle as open_bundle
    from toolkit.deploy.verification import verify as verify

_EXPORTS = {
    "Manifest": "toolkit.deploy.manifest",
    "BundleArtifact": "toolkit.deploy.manifest",
    "BundleFile": "toolkit.deploy.manifest",
    "package": "toolkit.deploy.bundle",
    "verify": "toolkit.deploy.verification",
    "open_bundle": "toolkit.deploy.verification",
    "Predictor": "toolkit.deploy.predictor",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
