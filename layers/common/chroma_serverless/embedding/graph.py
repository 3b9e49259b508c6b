"""The BERT encoder as an ONNX graph, written with ``onnx.helper`` (opset 17, IR version 8:
weights as initializers, inputs ``input_ids`` / ``attention_mask`` / ``token_type_ids`` int64
with dynamic batch and sequence axes, output ``last_hidden_state`` float32
``[batch, sequence, 384]``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.embedding.bert import require

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy.typing as npt

    from chroma_serverless.embedding.bert import BertConfig

#: ONNX opset and IR version of the graph: LayerNormalization needs opset 17; IR version 8 is
#: opset 17's, so any ONNX Runtime from 1.13 on loads the model.
OPSET = 17
IR_VERSION = 8
PRODUCER = "chroma_serverless.embedding.build"


def bert_onnx(
    config: BertConfig, weights: Mapping[str, npt.NDArray[np.float32]], *, doc: str = ""
) -> Any:
    """The BERT encoder as an ``onnx.ModelProto`` (``last_hidden_state`` only, no pooler).

    Written for ONNX Runtime's fusions: each Linear is MatMul (by the transposed weight) +
    Add; residual Add + LayerNormalization become SkipLayerNormalization; GELU is the
    ``x·½·(1 + erf(x/√2))`` pattern (Div → Erf → Add → Mul → Mul) that fuses into
    Gelu/BiasGelu; the attention scale is a Mul after Q·Kᵀ (folded into FusedMatMul); the
    additive mask ``(1 − mask)·float32.min`` is computed once, ``[batch, 1, 1, sequence]``.
    """
    onnx = require("onnx")
    helper, numpy_helper, tensor_proto = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    nodes: list[Any] = []
    initializers: list[Any] = []

    def const(name: str, value: npt.ArrayLike, dtype: type[np.generic] = np.float32) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(op_type: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def weight(name: str) -> str:
        return const(name, weights[name])

    def linear(x: str, prefix: str, out: str) -> str:
        # PyTorch's y = x·Wᵀ + b; Wᵀ stored as the initializer "<prefix>.weight_t".
        w_t = const(f"{prefix}.weight_t", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        return op("Add", [op("MatMul", [x, w_t], f"{out}.matmul"), weight(f"{prefix}.bias")], out)

    def split_heads(x: str, perm: list[int]) -> str:
        heads = op("Reshape", [x, to_heads], f"{x}.heads")
        return op("Transpose", [heads], f"{x}.t", perm=perm)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return op(
            "LayerNormalization",
            [x, weight(f"{prefix}.weight"), weight(f"{prefix}.bias")],
            out,
            axis=-1,
            epsilon=config.layer_norm_eps,
        )

    heads, head_size, hidden = config.num_attention_heads, config.head_size, config.hidden_size
    one = const("const.one", 1.0)
    half = const("const.half", 0.5)
    sqrt2 = const("const.sqrt2", math.sqrt(2.0))
    scale = const("const.attention_scale", 1.0 / math.sqrt(head_size))
    to_heads = const("const.heads_shape", [0, 0, heads, head_size], np.int64)
    to_hidden = const("const.hidden_shape", [0, 0, hidden], np.int64)

    # Embeddings: word + position (rows 0..sequence-1) + token type, then LayerNorm.
    sequence = op("Shape", ["input_ids"], "embeddings.sequence_length", start=1, end=2)
    positions = op(
        "Slice",
        [
            weight("embeddings.position_embeddings.weight"),
            const("const.zero", [0], np.int64),
            sequence,
            const("const.axis0", [0], np.int64),
        ],
        "embeddings.positions",
    )
    words = op(
        "Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "embeddings.words"
    )
    types = op(
        "Gather",
        [weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
        "embeddings.token_types",
    )
    summed = op("Add", [op("Add", [words, types], "embeddings.add0"), positions], "embeddings.sum")
    x = layer_norm(summed, "embeddings.LayerNorm", "embeddings.output")

    # The additive attention mask, once for all layers: 0 where attended, float32.min where
    # masked (finite, so a fully masked row gives uniform weights, never NaN).
    mask = op("Cast", ["attention_mask"], "mask.float", to=tensor_proto.FLOAT)
    masked = op("Sub", [one, mask], "mask.inverted")
    fill = const("const.mask_fill", np.finfo(np.float32).min)
    bias = op("Mul", [masked, fill], "mask.additive")
    bias = op("Unsqueeze", [bias, const("const.axes12", [1, 2], np.int64)], "mask.bias")

    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q = linear(x, f"{p}attention.self.query", f"{p}q")
        k = linear(x, f"{p}attention.self.key", f"{p}k")
        v = linear(x, f"{p}attention.self.value", f"{p}v")
        # [batch, seq, hidden] → Q, V [batch, heads, seq, head_size], Kᵀ [batch, heads,
        # head_size, seq]
        q = split_heads(q, [0, 2, 1, 3])
        k = split_heads(k, [0, 2, 3, 1])
        v = split_heads(v, [0, 2, 1, 3])
        scores = op("Mul", [op("MatMul", [q, k], f"{p}qk"), scale], f"{p}qk.scaled")
        probs = op("Softmax", [op("Add", [scores, bias], f"{p}qk.masked")], f"{p}probs", axis=-1)
        context = op(
            "Transpose",
            [op("MatMul", [probs, v], f"{p}context")],
            f"{p}context.t",
            perm=[0, 2, 1, 3],
        )
        context = op("Reshape", [context, to_hidden], f"{p}context.merged")
        attention = linear(context, f"{p}attention.output.dense", f"{p}attention.dense")
        attention = op("Add", [attention, x], f"{p}attention.residual")
        x = layer_norm(attention, f"{p}attention.output.LayerNorm", f"{p}attention.output")

        inner = linear(x, f"{p}intermediate.dense", f"{p}intermediate")
        erf = op("Erf", [op("Div", [inner, sqrt2], f"{p}gelu.div")], f"{p}gelu.erf")
        gelu = op("Mul", [inner, op("Add", [erf, one], f"{p}gelu.add")], f"{p}gelu.mul")
        gelu = op("Mul", [gelu, half], f"{p}gelu")
        out = linear(gelu, f"{p}output.dense", f"{p}output.dense")
        out = op("Add", [out, x], f"{p}output.residual")
        last = i == config.num_hidden_layers - 1
        x = layer_norm(out, f"{p}output.LayerNorm", "last_hidden_state" if last else f"{p}output")

    dims = ["batch_size", "sequence_length"]
    inputs = [
        helper.make_tensor_value_info(name, tensor_proto.INT64, dims)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info("last_hidden_state", tensor_proto.FLOAT, [*dims, hidden])
    # Shape inference cannot tell that the sliced position rows number sequence_length; said
    # here, every hidden state is [batch_size, sequence_length, hidden], which ONNX Runtime's
    # SkipLayerNormalization fusion needs (both inputs of the residual Add of equal shape).
    known = [helper.make_tensor_value_info(positions, tensor_proto.FLOAT, [dims[1], hidden])]
    graph = helper.make_graph(
        nodes, "bert_encoder", inputs, [output], initializers, doc_string=doc, value_info=known
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        doc_string=doc,
    )
