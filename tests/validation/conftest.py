"""Fixtures for the validation tests: real ONNX exports of the digits model, and planted faults;
headless Chromium for the HTML report tests (``browser``, ``measure``, ``screenshot``).

``measure`` copies a page, adds a script that reads layout facts once the page has loaded
(page width, every table's and image's box, the lines a text cell wraps onto) and writes
them as JSON into ``<pre id="rehead-layout">``, then reads them back from the dumped DOM.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from validation.latency import LatencySettings

#: short latency settings for unit tests (seconds); a generous CV bound on this shared machine
FAST = LatencySettings(warmup_s=0.05, min_runs=5, min_duration_s=0.2, max_cv=10.0)


@pytest.fixture(scope="session")
def onnx_fp16(digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters import export_onnx

    out = tmp_path_factory.mktemp("onnx16") / "model-fp16.onnx"
    export_onnx(digits_model_dir, out, fp16=True, progress=False)
    return out


def edit_initializer(src: Path, dst: Path, name: str, edit: Callable[[np.ndarray], None]) -> Path:
    """Copy ``src`` to ``dst`` with initializer ``name`` changed in place by ``edit`` (onnx.numpy_helper)."""
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == name:
            values = numpy_helper.to_array(init).copy()
            edit(values)
            init.CopyFrom(numpy_helper.from_array(values, name))
            break
    else:
        raise KeyError(f"no initializer {name!r} in {src}")
    onnx.save(model, str(dst))
    return dst


def head_initializer(path: Path, suffix: str) -> str:
    """The name of the head's weight/bias initializer (``fc.weight``), whatever the exporter called it."""
    model = onnx.load(str(path), load_external_data=False)
    names = [i.name for i in model.graph.initializer if i.name.endswith(suffix) and "fc" in i.name]
    if not names:
        last = [i.name for i in model.graph.initializer][-6:]
        raise KeyError(f"no fc initializer ending in {suffix!r}: {last}")
    return names[0]


@pytest.fixture(scope="session")
def onnx_bad_new_row(
    onnx_fp32: Path, digits_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One new-class row (class 8) of the head weight perturbed."""
    from toolkit.models.model_dir import read_config

    new = read_config(digits_model_dir).head.new_indices
    assert 8 in new  # the fixture model pads 7 digits to 10: rows 7, 8, 9 are new

    def perturb(w: np.ndarray) -> None:
        w[8] += 0.05

    dst = tmp_path_factory.mktemp("bad") / "bad-row.onnx"
    return edit_initializer(onnx_fp32, dst, head_initializer(onnx_fp32, "weight"), perturb)


@pytest.fixture(scope="session")
def onnx_nan(onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NaN planted in the head bias of a kept class."""

    def plant(b: np.ndarray) -> None:
        b[2] = np.nan

    dst = tmp_path_factory.mktemp("nan") / "nan.onnx"
    return edit_initializer(onnx_fp32, dst, head_initializer(onnx_fp32, "bias"), plant)


@pytest.fixture(scope="session")
def onnx_fixed_batch(onnx_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fp32 export with its batch axis fixed at 2 (input and output)."""
    model = onnx.load(str(onnx_fp32))
    for value in (model.graph.input[0], model.graph.output[0]):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = 2
    dst = tmp_path_factory.mktemp("fixed") / "fixed-b2.onnx"
    onnx.save(model, str(dst))
    return dst


# --- headless Chromium for the HTML report ---------------------------------------------------


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


SKIP_REASON = (
    "chromium is not installed (apt-get update && apt-get install -y chromium); "
    "the HTML report cannot be checked in a browser"
)


def browser(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with ``args`` and a throw-away profile; waits at most 120 s."""
    exe = chromium()
    assert exe is not None
    base = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--hide-scrollbars",
    ]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120, check=False)


# Reads the layout after the page's own load handlers ran. ``lines`` is a box's height over its
# line height: a cell squeezed to one word per line has as many lines as words.
_MEASURE = """
<script>
window.addEventListener('load', function () { setTimeout(function () {
  function box(e) { var r = e.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width,
                                                                height: r.height}; }
  function lines(e) {
    var s = getComputedStyle(e), lh = parseFloat(s.lineHeight) || 1.2 * parseFloat(s.fontSize);
    var pad = parseFloat(s.paddingTop) + parseFloat(s.paddingBottom);
    return Math.round((e.getBoundingClientRect().height - pad) / lh);
  }
  var root = document.documentElement;
  var out = {window_width: window.innerWidth, scroll_width: root.scrollWidth, client_width: root.clientWidth,
             headline: (document.querySelector('h1') || {}).textContent || '', tables: [], images: [], cells: []};
  document.querySelectorAll('table').forEach(function (t) {
    var b = box(t); b.scroll_width = t.scrollWidth; b.headers = Array.prototype.map.call(
      t.querySelectorAll('th'), function (h) { return h.textContent; }); out.tables.push(b);
  });
  document.querySelectorAll('img').forEach(function (i) {
    var b = box(i); b.natural_width = i.naturalWidth; b.natural_height = i.naturalHeight; b.alt = i.alt;
    b.data = Object.assign({}, i.dataset); out.images.push(b);
  });
  document.querySelectorAll('td, li, p').forEach(function (c) {
    var text = c.textContent.trim();
    if (text.length > 40 && c.children.length <= 2) {
      var b = box(c); b.text = text; b.lines = lines(c); out.cells.push(b);
    }
  });
  var pre = document.createElement('pre'); pre.id = 'rehead-layout';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 0); });
</script>
"""


def measure(html: Path, work: Path, *, width: int = 1280, height: int = 900) -> dict[str, Any]:
    """Layout facts of ``html`` rendered at ``width`` × ``height`` CSS pixels (see the module docstring)."""
    work.mkdir(parents=True, exist_ok=True)
    page = work / "measured.html"
    page.write_text(html.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    done = browser([f"--window-size={width},{height}", "--dump-dom", page.as_uri()], work / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="rehead-layout">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, done.stdout[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    result: dict[str, Any] = json.loads(text)
    return result


def screenshot(html: Path, shot: Path, profile: Path, *, width: int = 1280, height: int = 2400) -> Path:
    """A PNG of the page's first ``height`` pixels at ``width``."""
    done = browser([f"--screenshot={shot}", f"--window-size={width},{height}", html.as_uri()], profile)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return shot
