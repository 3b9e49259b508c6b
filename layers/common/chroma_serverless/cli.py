"""``chroma-serverless``: serve the API locally."""

from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
from pathlib import Path

from chroma_serverless.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chroma-serverless")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the Chroma v2 API (embedded default)")
    run.add_argument("--path", type=Path, help="data directory (default ./data)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    run.add_argument("--allow-reset", action="store_true", help="enable POST /api/v2/reset")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.path is not None:
        settings = dataclasses.replace(settings, path=args.path)
    if args.allow_reset:
        settings = dataclasses.replace(settings, allow_reset=True)
    return serve(settings, args.host, args.port)


def serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from chroma_serverless.app import build_app

    app = build_app(settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    print(
        f"chroma-serverless listening on http://{host}:{bound} "
        f"(data: {settings.path.resolve()}, auth: off, reset: "
        f"{'on' if settings.allow_reset else 'off'})",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
