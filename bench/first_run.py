"""A newcomer's first run, ours against Chroma's, from nothing cached to the first heartbeat.

    python bench/first_run.py [--rev HEAD] [--dev] [--out bench/results/first_run.json]

Ours: a fresh ``git clone`` of this repository at ``--rev``, then ``make run PORT=... DATA=...``
with an empty pip cache and an empty model directory (so every wheel is downloaded and the
embedding model is built), timed from the start of ``make`` to the first answered
``/api/v2/heartbeat``. Then the size of ``.venv`` (and of ``build/``, where the model's build
tools live), and whether pip downloaded any torch wheel (its log). With ``--dev`` the clone then
runs the install half of ``make test`` (``make .venv/.dev model``) and that is checked for torch
too.

Chroma's: a fresh venv, ``pip install chromadb`` with its own empty pip cache, then ``chroma run``,
timed the same way. Both run one after the other on this machine; each server is stopped by its
process group.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "first_run.json"
TIMEOUT_S = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def du_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return round(int(out.stdout.split()[0]) / 1024, 1)


def torch_downloads(pip_log: Path) -> list[str]:
    """The lines of pip's log that download a torch or CUDA wheel."""
    if not pip_log.exists():
        return []
    return [
        line.strip()
        for line in pip_log.read_text(errors="replace").splitlines()
        if ("Downloading" in line or "Collecting" in line)
        and any(name in line.lower() for name in ("torch", "nvidia-", "triton"))
    ]


def until_heartbeat(port: int, process: subprocess.Popen[bytes], started: float) -> float:
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    while time.monotonic() - started < TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no heartbeat in {TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group the run started (make, its children, the server)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def ours(work: Path, rev: str, dev: bool) -> dict[str, Any]:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", rev], check=True)
    pip_log = work / "pip-ours.log"
    env = {
        **os.environ,
        "PIP_CACHE_DIR": str(work / "pip-cache-ours"),
        "PIP_LOG": str(pip_log),
        "CHROMA_SERVERLESS_MODEL_DIR": str(work / "model"),
    }
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    port = free_port()
    log = (work / "make-run.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}", f"DATA={work / 'data'}"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        seconds = until_heartbeat(port, process, started)
    finally:
        stop(process)
        log.close()
    listening = [
        line for line in (work / "make-run.log").read_text().splitlines() if "listening on" in line
    ]
    result: dict[str, Any] = {
        "rev": subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "first_heartbeat_s": round(seconds, 1),
        "venv_mb": du_mb(clone / ".venv"),
        "build_dir_mb": du_mb(clone / "build"),
        "model_mb": du_mb(work / "model"),
        "says_where_it_listens": listening[:1],
        "torch_downloads": torch_downloads(pip_log),
    }
    if dev:
        done = subprocess.run(
            ["make", ".venv/.dev", "model"], cwd=clone, env=env, capture_output=True, check=False
        )
        result["dev_install_exit"] = done.returncode
        result["dev_venv_mb"] = du_mb(clone / ".venv")
        result["torch_downloads_with_dev"] = torch_downloads(pip_log)
    return result


def chroma(work: Path) -> dict[str, Any]:
    venv = work / "chroma-venv"
    pip_log = work / "pip-chroma.log"
    env = {**os.environ, "PIP_CACHE_DIR": str(work / "pip-cache-chroma"), "PIP_LOG": str(pip_log)}
    env.pop("PYTHONPATH", None)
    port = free_port()
    log = (work / "chroma-run.log").open("wb")
    command = (
        f"{sys.executable} -m venv {venv} && {venv}/bin/pip install --quiet chromadb && "
        f"exec {venv}/bin/chroma run --path {work / 'chroma-data'} --host 127.0.0.1 --port {port}"
    )
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", command],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        seconds = until_heartbeat(port, process, started)
    finally:
        stop(process)
        log.close()
    version = subprocess.run(
        [f"{venv}/bin/python", "-c", "import chromadb; print(chromadb.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "chromadb": version,
        "first_heartbeat_s": round(seconds, 1),
        "venv_mb": du_mb(venv),
        "torch_downloads": torch_downloads(pip_log),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--dev", action="store_true", help="also check make test's install")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="first-run-"))
    try:
        report = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "ours": ours(work, args.rev, args.dev),
            "chroma": chroma(work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
