"""A server started with ``--auth``, the tokens of its callers, and its ``tokens`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.server import Server


@dataclass
class AuthServer:
    server: Server
    mode: str
    tokens: dict[str, str] = field(default_factory=dict)  # caller -> secret
    outputs: list[str] = field(default_factory=list)  # everything the token CLI printed

    def headers(self, caller: str, transport: str = "bearer") -> dict[str, str]:
        if caller == "none":
            return {}
        token = "csk-not-a-real-token" if caller == "bad" else self.tokens[caller]
        if transport == "bearer":
            return {"Authorization": f"Bearer {token}"}
        return {"X-Chroma-Token": token}

    def cli_env(self) -> dict[str, str]:
        env = {**os.environ}
        if self.mode == "aws-local":
            assert self.server.moto_endpoint
            env.update(
                CHROMA_SERVERLESS_MODE="aws",
                CHROMA_SERVERLESS_CATALOG_TABLE="chroma-catalog",
                CHROMA_SERVERLESS_AWS_ENDPOINT=self.server.moto_endpoint,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
            )
        return env

    def tokens_cli(self, *args: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "chroma_serverless.cli",
                "tokens",
                "--path",
                str(self.server.data),
                *args,
            ],
            env=self.cli_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done.stdout

    def create_token(self, user: str, tenant: str, databases: str, role: str) -> str:
        out = self.tokens_cli(
            "create", "--user", user, "--tenant", tenant, "--databases", databases, "--role", role
        )
        return out.strip().splitlines()[-1]
