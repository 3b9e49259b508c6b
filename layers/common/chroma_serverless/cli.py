"""``chroma-serverless``: serve the API locally (embedded default or the AWS stack on moto)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chroma_serverless import __version__
from chroma_serverless.settings import LAMBDA_MAX_BODY_BYTES, Settings
from chroma_serverless.transfer import commands as transfer
from chroma_serverless.types import ROLES

if TYPE_CHECKING:
    from chroma_serverless.types import Principal

AWS_LOCAL_TABLE = "chroma-catalog"
AWS_LOCAL_BUCKET = "chroma-records"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chroma-serverless",
        description="A serverless, Chroma-compatible vector database: Chroma's v2 API on LanceDB.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the Chroma v2 API")
    run.add_argument("--path", type=Path, help="data directory (default ./data)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    run.add_argument("--allow-reset", action="store_true", help="enable POST /api/v2/reset")
    run.add_argument(
        "--auth",
        action="store_true",
        help="require credentials: bearer tokens or Basic users (`chroma-serverless tokens "
        "create`, `chroma-serverless users create`)",
    )
    run.add_argument(
        "--aws-local",
        action="store_true",
        help="run the AWS deployment's storage (DynamoDB catalog, LanceDB on S3) on an "
        "in-process moto server, with Lambda's request limits; data lasts as long as the process",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text (default): readable lines on stderr; json: Powertools JSON lines and "
        "CloudWatch EMF metrics on stdout, as the Lambda functions write them",
    )
    tokens = commands.add_parser(
        "tokens",
        help="manage API tokens in the catalog (embedded: --path; AWS: CHROMA_SERVERLESS_MODE=aws "
        "with CHROMA_SERVERLESS_CATALOG_TABLE)",
    )
    tokens.add_argument("--path", type=Path, help="embedded data directory (default ./data)")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token; the secret is printed once")
    create.add_argument("--user", required=True, help="user id the token acts for")
    create.add_argument("--tenant", default="*", help="tenant, or * for every tenant")
    create.add_argument(
        "--databases", default="*", help="comma-separated databases, or * for every database"
    )
    create.add_argument("--role", choices=ROLES, required=True)
    actions.add_parser("list", help="list tokens (ids and scopes, never secrets)")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    users = commands.add_parser(
        "users",
        help="manage HTTP Basic users (username + password) in the catalog, located as for tokens",
    )
    users.add_argument("--path", type=Path, help="embedded data directory (default ./data)")
    user_actions = users.add_subparsers(dest="action", required=True)
    add_user = user_actions.add_parser(
        "create", help="create a user; unless chosen, a password is generated and printed once"
    )
    add_user.add_argument("--user", required=True, help="username (also the principal's user id)")
    add_user.add_argument("--tenant", default="*", help="tenant, or * for every tenant")
    add_user.add_argument(
        "--databases", default="*", help="comma-separated databases, or * for every database"
    )
    add_user.add_argument("--role", choices=ROLES, required=True)
    chosen = add_user.add_mutually_exclusive_group()
    chosen.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    chosen.add_argument("--prompt", action="store_true", help="ask for the password (no echo)")
    user_actions.add_parser("list", help="list users and scopes (never passwords or hashes)")
    remove_user = user_actions.add_parser("revoke", help="delete a user by username")
    remove_user.add_argument("username")
    maintain = commands.add_parser(
        "maintain", help="build/refresh indexes, compact and clean old versions now"
    )
    maintain.add_argument("--path", type=Path, help="embedded data directory (default ./data)")
    maintain.add_argument("--collection", help="one collection id (default: every collection)")
    transfer.add_parsers(commands)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.path is not None:
        settings = settings.replace(path=args.path)
    if args.command == "tokens":
        return manage_tokens(settings, args)
    if args.command == "users":
        return manage_users(settings, args)
    if args.command == "maintain":
        return run_maintenance(settings, args.collection)
    if args.command in ("import", "export", "restore"):
        return transfer.run(settings, args)
    if args.log_format is not None:
        settings = settings.replace(log_format=args.log_format)
    if args.allow_reset:
        settings = settings.replace(allow_reset=True)
    if args.auth:
        settings = settings.replace(auth=True)
    if args.aws_local:
        settings = start_aws_local(settings)
    if settings.maintenance == "off" and "CHROMA_SERVERLESS_MAINTENANCE" not in os.environ:
        settings = settings.replace(maintenance="background")  # the server's own worker
    return serve(settings, args.host, args.port)


def run_maintenance(settings: Settings, collection_id: str | None) -> int:
    import json

    from chroma_serverless.observe import setup
    from chroma_serverless.service.maintenance import maintain, maintain_all
    from chroma_serverless.wiring import build_service

    setup.configure(settings)
    service = build_service(settings.replace(maintenance="off"))
    reports = [maintain(service, collection_id)] if collection_id else maintain_all(service)
    for report in reports:
        print(json.dumps(report))
    return 0


def manage_tokens(settings: Settings, args: argparse.Namespace) -> int:
    from chroma_serverless.auth import access as auth
    from chroma_serverless.errors import ChromaError
    from chroma_serverless.wiring import build_credentials

    credentials = build_credentials(settings)
    try:
        if args.action == "create":
            databases = [d.strip() for d in args.databases.split(",") if d.strip()]
            principal = auth.new_principal(args.user, args.tenant, databases, args.role)
            secret, token = auth.issue(credentials, principal)
            print(f"token id {token.id} for {_describe(token.principal)}")
            print("secret (shown once, store it now):")
            print(secret)
        elif args.action == "list":
            for token in credentials.list_tokens():
                print(f"{token.id}  {_describe(token.principal)}  created {token.created_at}")
        else:
            token = credentials.revoke_token(args.id)
            print(f"revoked {token.id} ({_describe(token.principal)})")
    except ChromaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def manage_users(settings: Settings, args: argparse.Namespace) -> int:
    from chroma_serverless.auth import access as auth
    from chroma_serverless.errors import ChromaError
    from chroma_serverless.wiring import build_credentials

    credentials = build_credentials(settings)
    try:
        if args.action == "create":
            databases = [d.strip() for d in args.databases.split(",") if d.strip()]
            principal = auth.new_principal(args.user, args.tenant, databases, args.role)
            password, _ = auth.add_basic_user(credentials, principal, _chosen_password(args))
            print(f"created {_describe(principal)}")
            if not (args.password_stdin or args.prompt):
                print("password (shown once, store it now):")
                print(password)
        elif args.action == "list":
            for user in credentials.list_basic_credentials():
                print(f"{user.username}  {_describe(user.principal)}  created {user.created_at}")
        else:
            user = credentials.revoke_basic_credential(args.username)
            print(f"revoked {_describe(user.principal)}")
    except ChromaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _chosen_password(args: argparse.Namespace) -> str | None:
    """The password given on stdin or at a prompt; ``None`` to generate one."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not args.prompt:
        return None
    import getpass

    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        sys.exit("error: the passwords differ")
    return password


def _describe(principal: Principal) -> str:
    scope = f"tenant {principal.tenant} databases {','.join(principal.databases)}"
    return f"user {principal.user_id} role {principal.role} {scope}"


def start_aws_local(settings: Settings) -> Settings:
    """Start moto's server on a free port with the catalog table and records bucket."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - depends on the installation
        sys.exit("error: --aws-local needs boto3 and moto[server]: pip install -e '.[aws-local]'")

    from chroma_serverless.catalog.dynamodb.keys import ATTRIBUTES, KEY_SCHEMA

    serialize_dynamodb()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Dummy credentials for boto3 and LanceDB's object store alike.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    region = settings.aws_region
    boto3.client("dynamodb", endpoint_url=endpoint, region_name=region).create_table(
        TableName=AWS_LOCAL_TABLE,
        KeySchema=KEY_SCHEMA,  # type: ignore[arg-type]
        AttributeDefinitions=ATTRIBUTES,  # type: ignore[arg-type]
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("s3", endpoint_url=endpoint, region_name=region).create_bucket(
        Bucket=AWS_LOCAL_BUCKET
    )
    return settings.replace(
        mode="aws",
        catalog_table=AWS_LOCAL_TABLE,
        records_uri=f"s3://{AWS_LOCAL_BUCKET}/records",
        aws_endpoint=endpoint,
        max_body_bytes=min(settings.max_body_bytes, LAMBDA_MAX_BODY_BYTES),
    )


def serialize_dynamodb() -> None:
    """Make moto's DynamoDB (in this process) answer one request at a time, as DynamoDB
    applies each write and each transaction atomically. Moto backs a table up before a
    transaction and, when one of its conditions fails, restores the whole table from that copy,
    wiping what other requests wrote meanwhile: two concurrent creates of one collection name
    could then both succeed."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialized", False):
        return
    lock = threading.Lock()

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from chroma_serverless import wiring
    from chroma_serverless.http.app import build_app
    from chroma_serverless.observe import setup

    setup.configure(settings)
    app = build_app(settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from here on, so the start-up line is a promise
    bound = sock.getsockname()[1]
    print(
        f"chroma-serverless listening on http://{host}:{bound} "
        f"(data: {wiring.storage(settings)}, auth: {'on' if settings.auth else 'off'}, "
        f"reset: {'on' if settings.allow_reset else 'off'})",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
