"""Credentials (bearer tokens, HTTP Basic users), principals and the allow/deny decision.

Tokens are random secrets shown once at creation; the catalog keeps only their SHA-256, which is
also the lookup key, so a presented token is found without ever storing or comparing plaintext
(the final digest comparison is constant-time). Tokens arrive as ``Authorization: Bearer <t>``
or ``X-Chroma-Token: <t>``, the two transports of Chroma's token auth provider.

Basic users (RFC 7617, Chroma's ``BasicAuthClientProvider``) send ``Authorization: Basic
base64(user:password)``; the catalog keeps the username and a salted scrypt hash
(``passwords.py``). Both kinds map to the same :class:`Principal`, so roles and scopes are one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chroma_serverless.auth.passwords import PasswordChecker, hash_password
from chroma_serverless.errors import (
    AuthError,
    AuthorizationError,
    InvalidArgumentError,
    UniqueConstraintError,
)
from chroma_serverless.types import ANY, ROLES, BasicCredential, Principal, Token

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chroma_serverless.ports import Credentials
    from chroma_serverless.types import Role

TOKEN_PREFIX = "csk-"
# Everyone, when auth is off (as in Chroma's own server).
ANONYMOUS = Principal("", ANY, (ANY,), "admin")

READ = frozenset(
    {
        "auth:identity",
        "tenant:get_tenant",
        "db:get_database",
        "db:list_databases",
        "db:list_collections",
        "db:count_collections",
        "collection:get_collection",
        "collection:count_forks",
        "collection:get",
        "collection:query",
        "collection:count",
    }
)
WRITE = READ | {
    "db:create_collection",
    "collection:update_collection",
    "collection:delete_collection",
    "collection:fork_collection",
    "collection:add",
    "collection:update",
    "collection:upsert",
    "collection:delete",
}
ADMIN = WRITE | {
    "tenant:create_tenant",
    "db:create_database",
    "db:delete_database",
    "system:reset",
    "collection:list_versions",
    "collection:restore",
}
ROLE_ACTIONS: dict[Role, frozenset[str]] = {"reader": READ, "writer": WRITE, "admin": ADMIN}
# Actions on the whole server rather than one tenant: only a principal of every tenant may.
GLOBAL_ACTIONS = frozenset({"tenant:create_tenant", "system:reset"})


USERNAME_MAX = 128  # characters; also keeps the DynamoDB key far below its 2 KB limit
PASSWORD_MIN = 8  # characters, for chosen passwords (generated ones are 32 random characters)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_principal(user_id: str, tenant: str, databases: list[str], role: str) -> Principal:
    if role not in ROLES:
        raise InvalidArgumentError(f"Expected role to be one of {', '.join(ROLES)}, got {role}")
    if not user_id or not tenant or not databases or not all(databases):
        raise InvalidArgumentError("Expected a user id, a tenant and at least one database")
    return Principal(user_id, tenant, tuple(databases), role)


def issue(
    credentials: Credentials, principal: Principal, token: str | None = None
) -> tuple[str, Token]:
    """Store a token for ``principal``; returns the secret (shown once) and the stored record."""
    secret = token or new_token()
    digest = hash_token(secret)
    record = Token(digest[:16], digest, principal, datetime.now(UTC).isoformat(timespec="seconds"))
    credentials.create_token(record)
    return secret, record


def ensure_admin_token(credentials: Credentials, token: str) -> None:
    """Make ``token`` an admin of every tenant unless it is already known (idempotent: every
    cold start of every function calls it)."""
    if credentials.get_token(hash_token(token)) is not None:
        return
    try:
        issue(credentials, Principal("admin", ANY, (ANY,), "admin"), token)
    except UniqueConstraintError:  # another instance bootstrapped it first
        pass


def valid_username(username: str) -> bool:
    """1-128 printable characters without whitespace or ``:`` (RFC 7617: the user-id ends at
    the first colon)."""
    return (
        0 < len(username) <= USERNAME_MAX
        and username.isprintable()
        and not any(c.isspace() or c == ":" for c in username)
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)


def add_basic_user(
    credentials: Credentials, principal: Principal, password: str | None = None
) -> tuple[str, BasicCredential]:
    """Store a Basic user named ``principal.user_id``; returns the password (generated unless
    given; shown once) and the stored record, which holds only its scrypt hash."""
    if not valid_username(principal.user_id):
        raise InvalidArgumentError(
            f"Expected a username of 1-{USERNAME_MAX} printable characters without spaces or "
            f"':', got {principal.user_id!r}"
        )
    if password is not None and len(password) < PASSWORD_MIN:
        raise InvalidArgumentError(
            f"Expected a password of at least {PASSWORD_MIN} characters, got {len(password)}"
        )
    secret = password if password is not None else new_password()
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    record = BasicCredential(principal.user_id, hash_password(secret), principal, created_at)
    credentials.create_basic_credential(record)
    return secret, record


def presented_basic(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ``(username, password)`` of an ``Authorization: Basic`` header, ``None`` for any other
    scheme; a malformed one is an AuthorizationError (a 401, like an unknown token)."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # bad base64 or padding, non-ASCII header text, non-UTF-8 credentials
        raise AuthorizationError("Unauthorized: malformed Basic credentials") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise AuthorizationError("Unauthorized: malformed Basic credentials (no ':')")
    return username, password


def presented_token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = headers.get("x-chroma-token", "").strip()
    return token or None


class Authenticator:
    """Turns request headers into a :class:`Principal` and decides each action."""

    def __init__(self, credentials: Credentials, enabled: bool) -> None:
        self.credentials = credentials
        self.enabled = enabled
        self.passwords = PasswordChecker()

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        basic = presented_basic(headers)
        if basic is not None:
            return self._basic_user(*basic)
        token = presented_token(headers)
        if token is None:
            raise AuthorizationError(
                "Unauthorized: no credentials (send Authorization: Bearer <token> or Basic)"
            )
        digest = hash_token(token)
        stored = self.credentials.get_token(digest)
        if stored is None or not hmac.compare_digest(stored.hash, digest):
            raise AuthorizationError("Unauthorized: unknown token")
        return stored.principal

    def _basic_user(self, username: str, password: str) -> Principal:
        # A name no user can have is refused before touching storage (and its key limits).
        stored = (
            self.credentials.get_basic_credential(username) if valid_username(username) else None
        )
        verified = self.passwords.check(
            username, password, None if stored is None else stored.password_hash
        )
        if stored is None or not verified:
            raise AuthorizationError("Unauthorized: unknown user or wrong password")
        return stored.principal

    @staticmethod
    def authorize(
        principal: Principal, action: str, tenant: str | None, database: str | None
    ) -> None:
        """Raise AuthError unless ``principal`` may do ``action`` on ``tenant``/``database``."""
        if action not in ROLE_ACTIONS[principal.role]:
            raise AuthError("Forbidden")
        if action in GLOBAL_ACTIONS and principal.tenant != ANY:
            raise AuthError("Forbidden")
        if tenant is not None and principal.tenant not in (ANY, tenant):
            raise AuthError("Forbidden")
        if database is not None and not can_see_database(principal, database):
            raise AuthError("Forbidden")


def can_see_database(principal: Principal, database: str) -> bool:
    return ANY in principal.databases or database in principal.databases
