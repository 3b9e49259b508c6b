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
from chroma_serverless.types import DEFAULT_DATABASE, DEFAULT_TENANT, ROLES

if TYPE_CHECKING:
    from chroma_serverless.types import Principal

AWS_LOCAL_TABLE = "chroma-catalog"
AWS_LOCAL_BUCKET = "chroma-records"


class CommandError(Exception):
    """A failure of the command itself, reported as one ``error:`` line."""


def parser() -> argparse.ArgumentParser:
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
    _data_path(tokens)
    actions = tokens.add_subparsers(dest="action", required=True)
    said = (
        "create a token; the secret is printed once. Without --tenant the token covers EVERY "
        "tenant and, without --databases, every database"
    )
    create = actions.add_parser("create", help=said, description=said)
    create.add_argument("--user", required=True, help="user id the token acts for")
    _scope(create)
    create.add_argument("--role", choices=ROLES, required=True)
    _data_path(create, after=True)
    _data_path(actions.add_parser("list", help="list tokens (ids and scopes, never secrets)"), True)
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    _data_path(revoke, after=True)
    users = commands.add_parser(
        "users",
        help="manage HTTP Basic users (username + password) in the catalog, located as for tokens",
    )
    _data_path(users)
    user_actions = users.add_subparsers(dest="action", required=True)
    said = (
        "create a user; unless chosen, a password is generated and printed once. Without "
        "--tenant the user may use EVERY tenant and, without --databases, every database"
    )
    add_user = user_actions.add_parser("create", help=said, description=said)
    add_user.add_argument("--user", required=True, help="username (also the principal's user id)")
    _scope(add_user)
    add_user.add_argument("--role", choices=ROLES, required=True)
    _data_path(add_user, after=True)
    chosen = add_user.add_mutually_exclusive_group()
    chosen.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    chosen.add_argument("--prompt", action="store_true", help="ask for the password (no echo)")
    listing = user_actions.add_parser("list", help="list users and scopes (never passwords)")
    _data_path(listing, after=True)
    remove_user = user_actions.add_parser("revoke", help="delete a user by username")
    remove_user.add_argument("username")
    _data_path(remove_user, after=True)
    maintain = commands.add_parser(
        "maintain", help="build/refresh indexes, compact and clean old versions now"
    )
    maintain.add_argument("--path", type=Path, help="embedded data directory (default ./data)")
    one = maintain.add_mutually_exclusive_group()
    one.add_argument("--collection", metavar="NAME", help="one collection (default: every one)")
    one.add_argument("--id", metavar="ID", help="one collection, by its id")
    maintain.add_argument("--tenant", default=DEFAULT_TENANT, help="of --collection")
    maintain.add_argument("--database", default=DEFAULT_DATABASE, help="of --collection")
    transfer.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return dispatch(args)
    except Exception as exc:
        message = failure(exc)
        if message is None:  # a bug: its traceback
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


def _data_path(parser: argparse.ArgumentParser, after: bool = False) -> None:
    """``--path``, accepted before the action and (``after``) after it too."""
    parser.add_argument(
        "--path",
        type=Path,
        default=argparse.SUPPRESS if after else None,
        help="embedded data directory of a server (default ./data); it must exist",
    )


def _scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant", default="*", help="an existing tenant (default: *, every tenant)"
    )
    parser.add_argument(
        "--databases",
        default="*",
        help="comma-separated existing databases of the tenant (default: *, every database)",
    )


def dispatch(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.path is not None:
        settings = settings.replace(path=args.path)
    if args.command == "tokens":
        return manage_tokens(settings, args)
    if args.command == "users":
        return manage_users(settings, args)
    if args.command == "maintain":
        return run_maintenance(settings, args)
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


def failure(exc: Exception) -> str | None:
    """The one line a failure the user can act on is reported with (``None``: a bug, raised
    with its traceback). The one place the command's errors are mapped."""
    from chroma_serverless.errors import ChromaError

    if isinstance(exc, ChromaError):
        return exc.message
    if isinstance(exc, CommandError):
        return str(exc)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.TransportError):
        try:
            where = str(exc.request.url)
        except RuntimeError:  # no request attached
            where = "the server"
        return f"cannot reach {where}: {exc or type(exc).__name__}"
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(exc, arrow.ArrowException) and not isinstance(exc, OSError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}"
    return None


def run_maintenance(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from chroma_serverless.observe import setup
    from chroma_serverless.service.maintenance import maintain, maintain_all
    from chroma_serverless.wiring import build_service, existing_data

    setup.configure(settings)
    existing_data(settings)
    service = build_service(settings.replace(maintenance="off"))
    if args.collection is not None:  # NotFoundError for a name it does not know
        ids = [service.get_collection(args.tenant, args.database, args.collection).id]
    elif args.id is not None:
        ids = [service.catalog.get_collection_by_id(args.id).id]
    else:
        ids = []
    reports = [maintain(service, i) for i in ids] if ids else maintain_all(service)
    for report in reports:
        print(json.dumps(report))
    return 0


def _checked_scope(settings: Settings, args: argparse.Namespace) -> list[str]:
    """The databases of a new token or user, its tenant and databases checked to exist."""
    from chroma_serverless.wiring import build_catalog

    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if args.tenant == "*":  # databases of any tenant: nothing to check them against
        return databases
    catalog = build_catalog(settings)
    catalog.get_tenant(args.tenant)  # NotFoundError
    for database in databases:
        if database != "*":
            catalog.get_database(args.tenant, database)
    return databases


def manage_tokens(settings: Settings, args: argparse.Namespace) -> int:
    from chroma_serverless.auth import access as auth
    from chroma_serverless.wiring import build_credentials, existing_data

    existing_data(settings)
    if args.action == "create":
        databases = _checked_scope(settings, args)
        principal = auth.new_principal(args.user, args.tenant, databases, args.role)
        secret, token = auth.issue(build_credentials(settings), principal)
        print(f"token id {token.id} for {_describe(token.principal)}")
        _warn_if_wide(token.principal)
        print("secret (shown once, store it now):")
        print(secret)
    elif args.action == "list":
        for token in build_credentials(settings).list_tokens():
            print(f"{token.id}  {_describe(token.principal)}  created {token.created_at}")
    else:
        token = build_credentials(settings).revoke_token(args.id)
        print(f"revoked {token.id} ({_describe(token.principal)})")
    return 0


def manage_users(settings: Settings, args: argparse.Namespace) -> int:
    from chroma_serverless.auth import access as auth
    from chroma_serverless.wiring import build_credentials, existing_data

    existing_data(settings)
    if args.action == "create":
        databases = _checked_scope(settings, args)
        principal = auth.new_principal(args.user, args.tenant, databases, args.role)
        credentials = build_credentials(settings)
        password, _ = auth.add_basic_user(credentials, principal, _chosen_password(args))
        print(f"created {_describe(principal)}")
        _warn_if_wide(principal)
        if not (args.password_stdin or args.prompt):
            print("password (shown once, store it now):")
            print(password)
    elif args.action == "list":
        for user in build_credentials(settings).list_basic_credentials():
            print(f"{user.username}  {_describe(user.principal)}  created {user.created_at}")
    else:
        user = build_credentials(settings).revoke_basic_credential(args.username)
        print(f"revoked {_describe(user.principal)}")
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
    tenant = "* (every tenant)" if principal.tenant == "*" else principal.tenant
    databases = ",".join(principal.databases)
    if "*" in principal.databases:
        databases += " (every database)"
    return f"user {principal.user_id} role {principal.role} tenant {tenant} databases {databases}"


def _warn_if_wide(principal: Principal) -> None:
    if principal.tenant == "*" or "*" in principal.databases:
        tenant = principal.tenant
        where = "EVERY tenant" if tenant == "*" else f"every database of tenant {tenant}"
        print(
            f"note: this covers {where}; pass --tenant and --databases to limit it",
            file=sys.stderr,
        )


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
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
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
