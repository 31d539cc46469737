"""Running a bundle needs no validation stack: the Predictor and the server import none of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_predicting_with_a_bundle_imports_no_validation_module(bundle_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images.npy"
    import numpy as np

    np.save(images, np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32))
    code = (
        "import json, sys, numpy as np\n"
        "import toolkit.deploy.serve\n"
        "from toolkit.deploy.predictor import Predictor\n"
        f"p = Predictor.from_bundle({str(bundle_dir)!r})\n"
        f"out = p.predict(np.load({str(images)!r}))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'validation' or m.startswith('validation.'))))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
