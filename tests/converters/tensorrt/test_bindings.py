"""converters.tensorrt._trt against the real TensorRT 10.x and 11.x Python bindings, without TensorRT's libraries.

mypy checks ``_trt`` against NVIDIA's 10.13 stubs (test_typing.py); no stubs exist for 11. So
this test takes the bindings themselves: the registry's ``tensorrt-cu12-bindings`` wheel (1.3 MB)
downloads alone, and its extension module needs from NVIDIA's libraries only nine C entry points
(``createInferBuilder_INTERNAL`` and friends, read from its dynamic symbol table), called when a
builder, runtime or parser is made. Stand-in libraries that define those nine (returning null) let
the real module import: its classes, methods, properties and enum members are then the ones the
release has, read with ``getattr``, not guessed from strings. Nothing here builds or runs an engine.

In a subprocess (the stand-ins go on the loader's path) it checks, for each major:
every ``trt.X.Y`` chain in ``_trt.py``; every method or property ``_trt.py`` calls on a TensorRT
object (receiver variables mapped to their classes in ``RECEIVERS``; a receiver not in the map fails
the test, so the map cannot fall behind the module); that ``_trt.builder_flag_names()`` detects
weak typing on 10 and its absence on 11; that every flag name ``BuildOptions.typing`` can ask for
under the detected features is a ``BuilderFlag`` there (``_trt._flag``); and every
``hardware_compat`` level. pyproject pins ``tensorrt-cu12<12`` until 12 passes the same test.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / "build" / "trt-bindings"
TRT_MODULE = ROOT / "converters" / "tensorrt" / "_trt.py"
MAJORS = ("10", "11")

#: the C functions the bindings take from libnvinfer, libnvonnxparser and libnvinfer_plugin
_STANDINS = """
void* createInferBuilder_INTERNAL(void* l, int v) { return 0; }
void* createInferRefitter_INTERNAL(void* e, void* l, int v) { return 0; }
void* createInferRuntime_INTERNAL(void* l, int v) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* r, void* l, int v) { return 0; }
void* createNvOnnxParser_INTERNAL(void* n, void* l, int v) { return 0; }
void* getBuilderPluginRegistry(int c) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void* getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void* l, const char* n) { return 0; }
"""

#: receiver expression in _trt.py -> the TensorRT class it holds
RECEIVERS = {
    "builder": "Builder",
    "config": "IBuilderConfig",
    "parser": "OnnxParser",
    "profile": "IOptimizationProfile",
    "runtime": "Runtime",
    "self._runtime": "Runtime",
    "engine": "ICudaEngine",
    "self._engine": "ICudaEngine",
    "self._context": "IExecutionContext",
    "refitter": "Refitter",
    "onnx_refitter": "OnnxParserRefitter",
    "error": "ParserError",
    "serialization": "ISerializationConfig",
    "_SEVERITY": "ILogger.Severity",
}
#: receivers in _trt.py that are not TensorRT objects (Python's, or _trt's own)
PLAIN = {
    "request", "lines", "details", "specs", "dataclasses", "os", "os.path", "_LOGGER", "logger", "self._logger",
    "self", "self.errors", "self.warnings",
}


def _chain(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def uses_of_trt() -> tuple[list[str], dict[str, list[str]], list[str]]:
    """``trt.`` chains, {class: [attributes]} for TensorRT objects, and receivers in neither table."""
    chains: set[str] = set()
    members: dict[str, set[str]] = {}
    unknown: set[str] = set()
    for node in ast.walk(ast.parse(TRT_MODULE.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        chain = _chain(node)
        if chain is None:
            continue
        if chain[0] == "trt":
            chains.add(".".join(chain[1:]))
            continue
        receiver = ".".join(chain[:-1])
        if receiver in RECEIVERS:
            members.setdefault(RECEIVERS[receiver], set()).add(chain[-1])
        elif receiver not in PLAIN and not any(receiver.startswith(p + ".") for p in RECEIVERS):
            unknown.add(receiver)
    return sorted(chains), {k: sorted(v) for k, v in members.items()}, sorted(unknown)


def test_every_receiver_in_the_trt_module_is_classified() -> None:
    """A new TensorRT object in _trt.py must be mapped to its class, or the bindings check misses it."""
    chains, members, unknown = uses_of_trt()
    assert unknown == [], f"map these receivers in RECEIVERS (TensorRT class) or PLAIN: {unknown}"
    assert "BuilderFlag.TF32" in chains and "set_flag" in members["IBuilderConfig"]


#: set by .ci/run: the folder its venv setup downloaded both majors' wheels into, once; with it set,
#: a missing wheel is a failure of that setup (never a download at test time, never a skip)
WHEELS_ENV = "REHEAD_TRT_BINDINGS_WHEELS"


def _download(major: str, folder: Path) -> Path:
    ci = os.environ.get(WHEELS_ENV)
    if ci:
        found = sorted(Path(ci).glob(f"tensorrt_cu12_bindings-{major}.*.whl"))
        if not found:
            pytest.fail(f"{WHEELS_ENV}={ci} holds no tensorrt_cu12_bindings-{major}.*.whl: .ci/run downloads it "
                        "when it creates its venv; remove that venv to create it again")
        return found[-1]
    # outside .ci/run: download once into build/ (needs the package index)
    wheels = sorted(folder.glob("tensorrt_cu12_bindings-*.whl"))
    if wheels:
        return wheels[-1]
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(folder),
         f"tensorrt-cu12-bindings=={major}.*"],
        capture_output=True, text=True, timeout=300,
    )
    wheels = sorted(folder.glob("tensorrt_cu12_bindings-*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.fail(f"cannot download tensorrt-cu12-bindings=={major}.* from the package index: "
                    f"{done.stderr.strip()[-400:]}; this check needs the registry (or the wheel in {folder})")
    return wheels[-1]


@pytest.fixture(scope="module", params=MAJORS, ids=[f"trt{m}" for m in MAJORS])
def bindings(request: pytest.FixtureRequest) -> tuple[str, Path, Path]:
    """(major, folder holding tensorrt_bindings/, folder of stand-in libraries) for one major."""
    major: str = request.param
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("this check needs a C compiler (cc) for the stand-in libraries: apt-get install gcc")
    folder = CACHE / major
    wheel = _download(major, folder)
    site = folder / wheel.stem
    if not (site / "tensorrt_bindings" / "__init__.py").is_file():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    libs = folder / "libs"
    libs.mkdir(exist_ok=True)
    source = libs / "standins.c"
    source.write_text(_STANDINS)
    for name in ("nvinfer", "nvonnxparser", "nvinfer_plugin"):
        soname = f"lib{name}.so.{major}"
        if not (libs / soname).is_file():
            subprocess.run([compiler, "-shared", "-fPIC", "-o", str(libs / soname), f"-Wl,-soname,{soname}",
                            str(source)], check=True, capture_output=True, timeout=120)
    return major, site, libs


_PROBE = textwrap.dedent(
    """
    import json, sys
    import tensorrt_bindings
    sys.modules["tensorrt"] = tensorrt_bindings  # what the tensorrt package re-exports
    from converters.tensorrt import _trt
    from converters.tensorrt.options import HARDWARE_COMPAT, BuildOptions, TrtFeatures

    def lookup(root, dotted):
        for part in dotted.split("."):
            root = getattr(root, part)
        return root

    chains, members = json.loads(sys.argv[1])
    missing = []
    for chain in chains:
        try:
            lookup(tensorrt_bindings, chain)
        except AttributeError:
            missing.append(chain)
    for cls, names in members.items():
        owner = lookup(tensorrt_bindings, cls)
        missing += [f"{cls}.{n}" for n in names if not hasattr(owner, n)]
    features = TrtFeatures.detect(_trt.version(), _trt.builder_flag_names())
    asked = set()
    for kwargs in ({}, {"tf32": True}, {"fp16": True}, {"bf16": True}, {"refittable": True},
                   {"strip_weights": True}, {"version_compatible": True}, {"strongly_typed": True}):
        for precision in ("fp32", "fp16", "int8"):
            try:
                typing = BuildOptions(**kwargs).typing(precision, features)
            except Exception as exc:  # refused by rehead before TensorRT: not a flag TensorRT must know
                if type(exc).__name__ != "InvalidArgumentError":
                    raise
                continue
            asked.update(typing.flags)
    bad_flags = []
    for name in sorted(asked):
        try:
            _trt._flag(name)
        except Exception as exc:
            bad_flags.append(f"{name}: {exc}")
    bad_levels = []
    for level in HARDWARE_COMPAT:
        try:
            _trt._hardware_level(level)
        except Exception as exc:
            bad_levels.append(f"{level}: {exc}")
    _trt.CollectingLogger()  # a subclass of the real ILogger
    print(json.dumps({"version": _trt.version(), "weak_typing": features.weak_typing, "missing": missing,
                      "flags": sorted(asked), "bad_flags": bad_flags, "bad_levels": bad_levels}))
    """
)


def test_trt_module_uses_only_what_the_bindings_have(bindings: tuple[str, Path, Path]) -> None:
    major, site, libs = bindings
    chains, members, _ = uses_of_trt()
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join([str(libs), os.environ.get("LD_LIBRARY_PATH", "")]),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([chains, members])],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["version"].split(".")[0] == major
    assert found["missing"] == [], f"TensorRT {found['version']} has no {found['missing']}"
    assert found["bad_flags"] == [] and found["bad_levels"] == [], found
    # detected by feature: TensorRT 10 still has weak typing (FP16/BF16/INT8 flags), 11 does not
    assert found["weak_typing"] is (major == "10")
    assert ("FP16" in found["flags"]) is (major == "10") and "INT8" not in found["flags"]
