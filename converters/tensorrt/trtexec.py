"""The trtexec line: the command that builds the same engine by hand with TensorRT's ``trtexec``.

Written from the same ``BuildOptions`` and detected ``TrtFeatures`` as the build, recorded in
the sidecar and saved beside the engine as ``<engine>.trtexec.sh`` (``trtexec_script``).
"""

from __future__ import annotations

import os
import shlex

from converters.tensorrt.options import TENSORRT_10, WEAK_TYPING_FLAGS, BuildOptions, TrtFeatures
from converters.tensorrt.profile import Profile

#: ``hardware_compat`` values as trtexec's ``--hardwareCompatibilityLevel`` spells them
_TRTEXEC_HARDWARE = {"none": "none", "ampere+": "ampere+", "same-compute-capability": "sameComputeCapability"}


def trtexec_command(
    onnx: str | os.PathLike[str],
    engine: str | os.PathLike[str],
    options: BuildOptions,
    profile: Profile,
    *,
    onnx_precision: str = "fp32",
    features: TrtFeatures | None = None,
) -> str:
    """The trtexec command line that builds the same engine by hand (quoted for a POSIX shell).

    Args:
        onnx: the ONNX file, as the line names it.
        engine: the engine file, as the line names it.
        options: the build options.
        profile: the resolved optimisation profile.
        onnx_precision: the ONNX's precision (fp32, fp16 or int8 = QDQ; default fp32).
        features: the TensorRT whose trtexec flags to use (None, the default: ``TENSORRT_10``;
            TensorRT 11's trtexec has no --fp16/--int8/--bf16 and types every network).
    """
    features = features or TENSORRT_10
    typing = options.typing(onnx_precision, features)

    def shape(dims: tuple[int, ...]) -> str:
        return f"{profile.input}:" + "x".join(str(d) for d in dims)

    args = [
        "trtexec",
        f"--onnx={os.fspath(onnx)}",
        f"--saveEngine={os.fspath(engine)}",
        f"--minShapes={shape(profile.min)}",
        f"--optShapes={shape(profile.opt)}",
        f"--maxShapes={shape(profile.max)}",
    ]
    args += [f"--{flag.lower()}" for flag in typing.flags if flag in WEAK_TYPING_FLAGS]
    args += [] if options.tf32 else ["--noTF32"]  # the build clears TF32 unless asked, typed or not
    # where weak typing exists the default is weak: say strong; where it does not, strong is all there is
    args += ["--stronglyTyped"] if typing.strongly_typed and features.weak_typing else []
    if options.workspace_mib is not None:
        args.append(f"--memPoolSize=workspace:{options.workspace_mib}M")
    args.append(f"--builderOptimizationLevel={options.opt_level}")
    if options.timing_cache:
        args.append(f"--timingCacheFile={options.timing_cache}")
    if options.hardware_compat != "none":
        args.append(f"--hardwareCompatibilityLevel={_TRTEXEC_HARDWARE[options.hardware_compat]}")
    args += ["--versionCompatible"] if options.version_compatible else []
    args += ["--refit"] if options.refittable else []
    args += ["--stripWeights"] if options.strip_weights else []
    args.append("--skipInference")
    return shlex.join(args)


def trtexec_script(line: str) -> str:
    """The ``<engine>.trtexec.sh`` file's text: a shell script that runs the trtexec line.

    Args:
        line: the trtexec command (``trtexec_command``, as the sidecar records it).
    """
    return "#!/bin/sh\n# the same build by hand, with TensorRT's trtexec\n" + line + "\n"
