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
opset range; nothing here imports TensorRT.
"""

from __future__ import annotations

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
