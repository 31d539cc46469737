"""TensorRT's ONNX parser support matrix, kept as data for ``rehead lint --target tensorrt``.

Copied from onnx-tensorrt's ``docs/operators.md`` (github.com/onnx/onnx-tensorrt), the revision
whose header reads "TensorRT 10.15 supports operators in the inclusive range of opset 9 to opset
24" (TensorRT 10.15 GA, changelog dated 2026-02-02). Every row marked ``Y`` is in
``SUPPORTED_OPS``, every row marked ``N`` in ``UNSUPPORTED_OPS``; the "Restrictions" column, where
the row has one, is kept in ``RESTRICTIONS`` (shortened; the wording is the table's). The copy was
checked against the 10.1-GA branch of the same file (commit 96e7811): the only differences are
the rows the changelog says were added since (window ops and STFT in 10.4/10.5, Attention in
10.14, RMSNormalization, RotaryEmbedding and TensorScatter in 10.15).

Refresh by replacing the sets with the newer table's rows and bumping ``TENSORRT_VERSION`` and the
opset range; nothing here imports TensorRT. ``table_for(version)`` picks the table of a TensorRT
version (10.15's above, or an 11.x one built from it and NVIDIA's release notes, sources below).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

TENSORRT_VERSION = "10.15"
SOURCE_URL = "https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"
#: inclusive opset range of the default ONNX domain that the parser accepts
MIN_OPSET = 9
MAX_OPSET = 24


def _names(table_rows: str) -> frozenset[str]:
    return frozenset(table_rows.split())


SUPPORTED_OPS: frozenset[str] = _names(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
    Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum
    Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
    GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If
    ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log
    LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
    MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
    ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
    ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
    RMSNormalization RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter
    ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus
    Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter ThresholdedRelu Tile
    TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """
)

UNSUPPORTED_OPS: frozenset[str] = _names(
    """
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im
    Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder
    MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss
    Optional OptionalGetElement OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch
    SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
    SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit
    TfIdfVectorizer Unique
    """
)

_REDUCE_AXES = "`axes` must be an initializer"

#: the table's "Restrictions" column, for supported ops that have one
RESTRICTIONS: dict[str, str] = {
    "Attention": "`Q`, `K`, `V` and `attn_mask` must be 4D; past/present key-value and "
    "`qk_matmul_output` are unsupported",
    "AveragePool": "2D or 3D pooling only; `dilations` must be empty or all ones",
    "Constant": "`sparse_value`, `value_string` and `value_strings` attributes are unsupported",
    "CumSum": "`axis` must be a build-time constant",
    "DeformConv": "`input` must have 1D or 2D spatial dimensions; begin and end `pads` must match",
    "DequantizeLinear": "types INT8, FP8, FP4, INT4 only; `x_zero_point` must be zero",
    "Dropout": "`is_training` must be an initializer and evaluate to False",
    "EyeLike": "`input` must have static dimensions",
    "GridSample": "input must be 4D",
    "GRU": "bidirectional GRUs need the same activations in both directions",
    "Hardmax": "`axis` dimension of input must be a build-time constant",
    "If": "the two branches' outputs must have the same rank and different names",
    "LayerNormalization": "only the first output `Y` is supported",
    "Loop": "scan output length cannot be dynamic; loop-carried shapes must not change",
    "LSTM": "bidirectional LSTMs need the same activations in both directions; "
    "`input_forget` and `layout` must be 0",
    "LpPool": "`dilations` must be empty or all ones",
    "MaxPool": "2D or 3D pooling only; `Indices` output unsupported; `dilations` must be empty or all ones",
    "OneHot": "`depth` must be a build-time constant",
    "QuantizeLinear": "types FP32, FP16, BF16 in; `y_zero_point` must be 0",
    "RandomNormal": "`seed` value is ignored by TensorRT",
    "RandomNormalLike": "`seed` value is ignored by TensorRT",
    "RandomUniform": "`seed` value is ignored by TensorRT",
    "RandomUniformLike": "`seed` value is ignored by TensorRT",
    "ReduceL1": _REDUCE_AXES,
    "ReduceL2": _REDUCE_AXES,
    "ReduceLogSum": _REDUCE_AXES,
    "ReduceLogSumExp": _REDUCE_AXES,
    "ReduceMax": _REDUCE_AXES,
    "ReduceMean": _REDUCE_AXES,
    "ReduceMin": _REDUCE_AXES,
    "ReduceProd": _REDUCE_AXES,
    "ReduceSum": _REDUCE_AXES,
    "ReduceSumSquare": _REDUCE_AXES,
    "Resize": "modes `nearest`/`linear` only, a fixed set of coordinate transformations, "
    "aspect ratio policy `stretch`, no antialiasing",
    "RNN": "bidirectional RNNs need the same activations in both directions",
    "RotaryEmbedding": "`position_ids` must be INT64",
    "STFT": "`frame_step` and `window` must be initializers; input must be real-valued",
    "ScatterND": "`reduction` other than `none` is not supported",
    "Squeeze": "`axes` must be resolvable to a constant",
    "TensorScatter": "`past_cache` and `update` must be 4D; `axis` must be -2",
    "TopK": "`sorted` must be 1; `K` must be less than 3840",
    "Unsqueeze": "`axes` must be resolvable to a constant",
}

#: the "Restrictions" text of rows marked N that say more than "not supported"
UNSUPPORTED_NOTES: dict[str, str] = {
    "DynamicQuantizeLinear": "TensorRT's IDynamicQuantize can be composed from ONNX operators "
    "as a model local function",
}

#: "UINT8 is only supported as network input or output tensor types" (the table's notes)
UINT8_IO_ONLY = True


# --- one table per TensorRT version: ``table_for`` ---------------------------------------------------------
#
# TensorRT 11.x: onnx-tensorrt's docs/operators.md for 11.x could not be found (the repository
# snapshot searched stops at 10.1-GA). The 11.x tables are therefore the 10.15 table above plus the
# parser changes NVIDIA's release notes name, each with its source, cumulatively by minor version:
#
# - 11.0: "Added support for Swish operator" (github.com/NVIDIA/TensorRT/releases/tag/v11.0,
#   "Parsers"). The same notes add the custom operators TRT_Attention, TRT_MoE and
#   TRT_KVCacheUpdate; their ONNX domain is not stated, so the lint still reports them as custom ops.
# - 11.1: no new ONNX operator (releases/tag/v11.1: TRT_Attention raggedness only).
# - 11.2: "Added support for the DFT operator and 5D GridSample operators" (releases/tag/v11.2,
#   "Parsers"; the FFTPlugin note in the same release backs DFT).
# - 11.3, 11.4: no new ONNX operator (releases/tag/v11.3: IParserRefitter external weights;
#   v11.4: IRefitterObserver).
# - 11.5: "Added support for ONNX opset 25" and "Added support for Squeeze when axis input is
#   omitted" (releases/tag/v11.5 and onnx-tensorrt's release/11.5-GA).
#
# Not known: whether 11.0 removed any operator of the 10.15 list (its notes name removed plugins,
# not parser operators), and the opset range of 11.0-11.4 (no note changes it before 11.5's 25, so
# 24 is assumed). A version past the last table here is linted against that last table, and says so.


@dataclasses.dataclass(frozen=True)
class OpTable:
    """The parser's support matrix for one TensorRT version (``version``, e.g. ``"11.2"``)."""

    version: str
    supported: frozenset[str]
    unsupported: frozenset[str]
    restrictions: Mapping[str, str]
    unsupported_notes: Mapping[str, str]
    min_opset: int
    max_opset: int
    source: str


_BASE = OpTable(
    TENSORRT_VERSION, SUPPORTED_OPS, UNSUPPORTED_OPS, RESTRICTIONS, UNSUPPORTED_NOTES, MIN_OPSET, MAX_OPSET, SOURCE_URL
)
_RELEASES = "https://github.com/NVIDIA/TensorRT/releases/tag/v"
#: minor -> (ops now supported, restrictions changed, max opset or None), TensorRT 11
_V11_CHANGES: dict[int, tuple[frozenset[str], dict[str, str], int | None]] = {
    0: (frozenset({"Swish"}), {}, None),
    1: (frozenset(), {}, None),
    2: (frozenset({"DFT"}), {"GridSample": "input must be 4D or 5D"}, None),
    3: (frozenset(), {}, None),
    4: (frozenset(), {}, None),
    5: (frozenset(), {"Squeeze": "`axes`, when given, must be resolvable to a constant"}, 25),
}
KNOWN_VERSIONS = (TENSORRT_VERSION, *(f"11.{minor}" for minor in _V11_CHANGES))


def _v11(minor: int) -> OpTable:
    supported, unsupported = set(SUPPORTED_OPS), set(UNSUPPORTED_OPS)
    restrictions, max_opset = dict(RESTRICTIONS), MAX_OPSET
    for step in range(minor + 1):
        added, changed, opset = _V11_CHANGES[step]
        supported |= added
        unsupported -= added
        restrictions.update(changed)
        max_opset = opset or max_opset
    return OpTable(
        f"11.{minor}", frozenset(supported), frozenset(unsupported), restrictions, UNSUPPORTED_NOTES, MIN_OPSET,
        max_opset, f"{SOURCE_URL} (10.15) and {_RELEASES}11.0 ... {_RELEASES}11.{minor}",
    )  # fmt: skip


def installed_version() -> str | None:
    """The version of the TensorRT wheel installed here (read from its metadata, TensorRT not
    imported), or None."""
    from importlib import metadata

    for name in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def table_for(version: str | None = None) -> OpTable:
    """The support matrix for a TensorRT version. Any 10.x reads the 10.15 table (the only 10.x one
    kept); 11.x the 11.x table of its minor (a minor past 11.5 reads 11.5's, its ``version`` says
    so). ``InvalidArgumentError`` for another major or a string that is not a version.

    Args:
        version: ``"11.2"``, ``"11.2.1.2"``, ``"10.13"``; None (the default): the installed TensorRT's,
            else 10.15's.
    """
    from toolkit.errors import InvalidArgumentError

    text = version if version is not None else installed_version()
    if text is None:
        return _BASE
    parts = text.strip().split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].split("+")[0].isdigit():
        raise InvalidArgumentError(
            f"'{text}' is not a TensorRT version", hint="e.g. trt_version='11.2' or '10.15'", param="trt_version"
        )
    major, minor = int(parts[0]), int(parts[1].split("+")[0])
    if major == 10:
        return _BASE
    if major == 11:
        return _v11(min(minor, max(_V11_CHANGES)))
    raise InvalidArgumentError(
        f"no ONNX parser table for TensorRT {text}",
        hint=f"lint against one of {', '.join(KNOWN_VERSIONS)} (trt_version='11.5')",
        param="trt_version",
    )
