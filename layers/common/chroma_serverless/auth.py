"""Bearer tokens, principals and the allow/deny decision for every route.

Tokens are random secrets shown once at creation; the catalog keeps only their SHA-256, which is
also the lookup key, so a presented token is found without ever storing or comparing plaintext
(the final digest comparison is constant-time). Tokens arrive as ``Authorization: Bearer <t>``
or ``X-Chroma-Token: <t>``, the two transports of Chroma's token auth provider.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chroma_serverless.errors import (
    AuthError,
    AuthorizationError,
    InvalidArgumentError,
    UniqueConstraintError,
)
from chroma_serverless.types import ANY, ROLES, Principal, Token

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chroma_serverless.catalog import Catalog
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
ADMIN = WRITE | {"tenant:create_tenant", "db:create_database", "db:delete_database", "system:reset"}
ROLE_ACTIONS: dict[Role, frozenset[str]] = {"reader": READ, "writer": WRITE, "admin": ADMIN}
# Actions on the whole server rather than one tenant: only a principal of every tenant may.
GLOBAL_ACTIONS = frozenset({"tenant:create_tenant", "system:reset"})


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


def issue(catalog: Catalog, principal: Principal, token: str | None = None) -> tuple[str, Token]:
    """Store a token for ``principal``; returns the secret (shown once) and the stored record."""
    secret = token or new_token()
    digest = hash_token(secret)
    record = Token(digest[:16], digest, principal, datetime.now(UTC).isoformat(timespec="seconds"))
    catalog.create_token(record)
    return secret, record


def ensure_admin_token(catalog: Catalog, token: str) -> None:
    """Make ``token`` an admin of every tenant unless it is already known (idempotent: every
    cold start of every function calls it)."""
    if catalog.get_token(hash_token(token)) is not None:
        return
    try:
        issue(catalog, Principal("admin", ANY, (ANY,), "admin"), token)
    except UniqueConstraintError:  # another instance bootstrapped it first
        pass


def presented_token(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    token = headers.get("x-chroma-token", "").strip()
    return token or None


class Authenticator:
    """Turns request headers into a :class:`Principal` and decides each action."""

    def __init__(self, catalog: Catalog, enabled: bool) -> None:
        self.catalog = catalog
        self.enabled = enabled

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        token = presented_token(headers)
        if token is None:
            raise AuthorizationError("Unauthorized: no token (send Authorization: Bearer <token>)")
        digest = hash_token(token)
        stored = self.catalog.get_token(digest)
        if stored is None or not hmac.compare_digest(stored.hash, digest):
            raise AuthorizationError("Unauthorized: unknown token")
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
