"""The catalog contract: every catalog implementation passes this suite (`catalog` fixture)."""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from chroma_serverless.auth.access import hash_token
from chroma_serverless.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError
from chroma_serverless.types import (
    DEFAULT_DATABASE,
    DEFAULT_TENANT,
    BasicCredential,
    Collection,
    Principal,
    Token,
)
from tests import factories

if TYPE_CHECKING:
    from chroma_serverless.ports import Catalog, Credentials
    from chroma_serverless.types import Metadata


def test_default_tenant_and_database_exist(catalog: Catalog) -> None:
    assert catalog.get_tenant(DEFAULT_TENANT).name == DEFAULT_TENANT
    database = catalog.get_database(DEFAULT_TENANT, DEFAULT_DATABASE)
    assert (database.name, database.tenant) == (DEFAULT_DATABASE, DEFAULT_TENANT)
    uuid.UUID(database.id)


def test_tenant_names_are_unique(catalog: Catalog) -> None:
    catalog.create_tenant("acme")
    with pytest.raises(UniqueConstraintError, match=r"Tenant \[acme\] already exists"):
        catalog.create_tenant("acme")


def test_missing_tenant_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"Tenant \[nobody\] not found"):
        catalog.get_tenant("nobody")


def test_database_names_are_unique_per_tenant(catalog: Catalog) -> None:
    catalog.create_tenant("acme")
    catalog.create_database("acme", "shared")
    catalog.create_database(DEFAULT_TENANT, "shared")
    with pytest.raises(UniqueConstraintError, match=r"Database \[shared\] already exists"):
        catalog.create_database("acme", "shared")


def test_database_needs_an_existing_tenant(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.create_database("nobody", "db")


def test_missing_database_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match="Are you sure it exists"):
        catalog.get_database(DEFAULT_TENANT, "nope")


def test_databases_list_by_name_with_limit_and_offset(catalog: Catalog) -> None:
    catalog.create_tenant("acme")
    for name in ("c", "a", "b"):
        catalog.create_database("acme", name)
    assert [d.name for d in catalog.list_databases("acme", None, 0)] == ["a", "b", "c"]
    assert [d.name for d in catalog.list_databases("acme", 1, 1)] == ["b"]
    assert [d.name for d in catalog.list_databases("acme", None, 2)] == ["c"]
    assert catalog.list_databases("nobody", None, 0) == []


def test_delete_database_removes_its_collections(catalog: Catalog) -> None:
    catalog.create_database(DEFAULT_TENANT, "doomed")
    doomed = factories.collection(name="inside", database="doomed")
    catalog.create_collection(doomed, get_or_create=False)
    catalog.create_collection(factories.collection(name="outside"), get_or_create=False)

    removed = catalog.delete_database(DEFAULT_TENANT, "doomed")

    assert [c.id for c in removed] == [doomed.id]
    with pytest.raises(NotFoundError):
        catalog.get_database(DEFAULT_TENANT, "doomed")
    with pytest.raises(NotFoundError):
        catalog.get_collection_by_id(doomed.id)
    assert catalog.count_collections(DEFAULT_TENANT, DEFAULT_DATABASE) == 1


def test_delete_missing_database_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.delete_database(DEFAULT_TENANT, "nope")


def test_collection_round_trips_with_types(catalog: Catalog) -> None:
    metadata: Metadata = {"int": 1, "float": 2.0, "bool": True, "str": "x", "list": ["a", "b"]}
    configuration = {"hnsw": {"space": "cosine", "ef_search": 10}, "embedding_function": None}
    created, was_created = catalog.create_collection(
        factories.collection(name="typed", metadata=metadata, configuration=configuration), False
    )
    assert was_created
    stored = catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "typed")
    assert stored == created
    assert stored.metadata == metadata
    assert [type(v) for v in stored.metadata.values()] == [int, float, bool, str, list]
    assert stored.configuration == configuration
    assert catalog.get_collection_by_id(created.id) == created


def test_collection_names_are_unique_per_database(catalog: Catalog) -> None:
    catalog.create_collection(factories.collection(name="docs"), False)
    catalog.create_database(DEFAULT_TENANT, "other")
    catalog.create_collection(factories.collection(name="docs", database="other"), False)
    with pytest.raises(UniqueConstraintError, match=r"Collection \[docs\] already exists"):
        catalog.create_collection(factories.collection(name="docs"), False)


def test_get_or_create_returns_the_stored_collection_unchanged(catalog: Catalog) -> None:
    first, _ = catalog.create_collection(
        factories.collection(name="docs", metadata={"v": 1}), False
    )
    again, created = catalog.create_collection(
        factories.collection(name="docs", metadata={"v": 2}), True
    )
    assert not created
    assert again == first


def test_collection_needs_an_existing_database(catalog: Catalog) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Database \[nope\] does not exist"):
        catalog.create_collection(factories.collection(name="docs", database="nope"), False)


def test_missing_collection_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"Collection \[nope\] does not exist"):
        catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "nope")
    with pytest.raises(NotFoundError):
        catalog.get_collection_by_id(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "nope")


def test_collections_list_by_name_with_limit_and_offset(catalog: Catalog) -> None:
    for name in ("ccc", "aaa", "bbb"):
        catalog.create_collection(factories.collection(name=name), False)
    listed = catalog.list_collections(DEFAULT_TENANT, DEFAULT_DATABASE, None, 0)
    assert [c.name for c in listed] == ["aaa", "bbb", "ccc"]
    page = catalog.list_collections(DEFAULT_TENANT, DEFAULT_DATABASE, 2, 1)
    assert [c.name for c in page] == ["bbb", "ccc"]
    assert catalog.count_collections(DEFAULT_TENANT, DEFAULT_DATABASE) == 3
    assert catalog.list_collections(DEFAULT_TENANT, "nope", None, 0) == []
    assert catalog.count_collections(DEFAULT_TENANT, "nope") == 0


def test_update_renames_and_replaces(catalog: Catalog) -> None:
    created, _ = catalog.create_collection(
        factories.collection(name="old", metadata={"a": 1}), False
    )
    updated = catalog.update_collection(created.id, "new", {"b": 2}, {"hnsw": {"space": "ip"}})
    assert (updated.name, updated.metadata) == ("new", {"b": 2})
    assert updated.configuration == {"hnsw": {"space": "ip"}}
    with pytest.raises(NotFoundError):
        catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "old")
    assert catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "new").id == created.id


def test_schema_round_trips_and_updates(catalog: Catalog) -> None:
    schema = {"defaults": {"int": {"int_inverted_index": {"enabled": False, "config": {}}}}}
    schema["keys"] = {"k": {"float": {"float_inverted_index": {"enabled": True, "config": {}}}}}
    created, _ = catalog.create_collection(factories.collection(name="docs", schema=schema), False)
    assert catalog.get_collection_by_id(created.id).schema == schema
    listed = catalog.list_collections(DEFAULT_TENANT, DEFAULT_DATABASE, None, 0)
    assert listed[0].schema == schema
    changed = {**schema, "keys": {}}
    updated = catalog.update_collection(created.id, None, None, {"hnsw": {}}, changed)
    assert updated.schema == changed
    catalog.set_dimension(created.id, 3)
    kept = catalog.update_collection(created.id, "renamed", None, None)
    assert (kept.schema, kept.dimension) == (changed, 3)
    assert catalog.create_collection(factories.collection(name="plain"), False)[0].schema is None


def test_update_with_nothing_keeps_everything(catalog: Catalog) -> None:
    created, _ = catalog.create_collection(
        factories.collection(name="same", metadata={"a": 1}), False
    )
    assert catalog.update_collection(created.id, None, None, None) == created


def test_rename_onto_an_existing_name_conflicts(catalog: Catalog) -> None:
    catalog.create_collection(factories.collection(name="taken"), False)
    mover, _ = catalog.create_collection(factories.collection(name="mover"), False)
    with pytest.raises(UniqueConstraintError):
        catalog.update_collection(mover.id, "taken", None, None)
    assert catalog.get_collection_by_id(mover.id).name == "mover"


def test_update_missing_collection_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.update_collection(str(uuid.uuid4()), "x", None, None)


def test_delete_collection_frees_the_name(catalog: Catalog) -> None:
    created, _ = catalog.create_collection(factories.collection(name="gone"), False)
    assert catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "gone").id == created.id
    again, was_created = catalog.create_collection(factories.collection(name="gone"), False)
    assert was_created and again.id != created.id


def test_dimension_is_fixed_by_the_first_setter(catalog: Catalog) -> None:
    created, _ = catalog.create_collection(factories.collection(name="dim"), False)
    assert created.dimension is None
    assert catalog.set_dimension(created.id, 3) == 3
    assert catalog.set_dimension(created.id, 5) == 3
    assert catalog.get_collection_by_id(created.id).dimension == 3


def test_reset_restores_only_the_defaults(catalog: Catalog) -> None:
    catalog.create_tenant("acme")
    catalog.create_collection(factories.collection(name="docs"), False)
    catalog.reset()
    with pytest.raises(NotFoundError):
        catalog.get_tenant("acme")
    assert catalog.count_collections(DEFAULT_TENANT, DEFAULT_DATABASE) == 0
    catalog.get_database(DEFAULT_TENANT, DEFAULT_DATABASE)


def test_concurrent_creates_of_one_name_yield_one_collection(catalog: Catalog) -> None:
    def create(_: int) -> str:
        try:
            catalog.create_collection(factories.collection(name="race"), False)
            return "created"
        except UniqueConstraintError:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(create, range(16)))
    assert outcomes == ["conflict"] * 15 + ["created"]
    assert catalog.count_collections(DEFAULT_TENANT, DEFAULT_DATABASE) == 1


def test_concurrent_get_or_create_returns_one_collection(catalog: Catalog) -> None:
    def get_or_create(_: int) -> str:
        return catalog.create_collection(factories.collection(name="race"), True)[0].id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(get_or_create, range(16)))
    assert len(ids) == 1


def stored_token(secret: str, user: str = "u", role: str = "reader") -> Token:
    return Token(
        id=hash_token(secret)[:16],
        hash=hash_token(secret),
        principal=Principal(user, "acme", ("db1", "db2"), role),  # type: ignore[arg-type]
        created_at="2026-11-24T00:00:00+00:00",
    )


def test_tokens_are_found_by_hash_listed_and_revoked(credentials: Credentials) -> None:
    first, second = stored_token("secret-1", "alice"), stored_token("secret-2", "bob", "admin")
    credentials.create_token(first)
    credentials.create_token(second)
    assert credentials.get_token(hash_token("secret-1")) == first
    assert credentials.get_token(hash_token("nope")) is None
    assert credentials.list_tokens() == [first, second]
    with pytest.raises(UniqueConstraintError):
        credentials.create_token(first)
    assert credentials.revoke_token(first.id) == first
    assert credentials.get_token(first.hash) is None
    with pytest.raises(NotFoundError):
        credentials.revoke_token(first.id)


def test_tokens_survive_a_reset(catalog: Catalog, credentials: Credentials) -> None:
    token = stored_token("keep-me")
    credentials.create_token(token)
    catalog.reset()
    assert credentials.get_token(token.hash) == token


def basic_user(username: str, role: str = "reader") -> BasicCredential:
    return BasicCredential(
        username=username,
        password_hash=f"scrypt$32768$8$1${username}-salt$key",  # opaque to the catalog
        principal=Principal(username, "acme", ("db1", "db2"), role),  # type: ignore[arg-type]
        created_at="2026-11-30T00:00:00+00:00",
    )


def test_basic_users_are_found_by_exact_username_listed_and_revoked(
    credentials: Credentials,
) -> None:
    bob, alice = basic_user("bob", "admin"), basic_user("alice@example.com")
    credentials.create_basic_credential(bob)
    credentials.create_basic_credential(alice)
    assert credentials.get_basic_credential("bob") == bob
    assert credentials.get_basic_credential("Bob") is None  # usernames are case-sensitive
    assert credentials.get_basic_credential("carol") is None
    assert credentials.list_basic_credentials() == [alice, bob]
    assert credentials.revoke_basic_credential("bob") == bob
    assert credentials.get_basic_credential("bob") is None
    assert credentials.list_basic_credentials() == [alice]
    with pytest.raises(NotFoundError):
        credentials.revoke_basic_credential("bob")


def test_a_username_is_unique(credentials: Credentials) -> None:
    credentials.create_basic_credential(basic_user("bob"))
    with pytest.raises(UniqueConstraintError):
        credentials.create_basic_credential(basic_user("bob", "admin"))
    assert credentials.get_basic_credential("bob") == basic_user("bob")


def test_concurrent_creates_of_one_username_yield_one_user(credentials: Credentials) -> None:
    def create(role: str) -> bool:
        try:
            credentials.create_basic_credential(basic_user("bob", role))
        except UniqueConstraintError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(create, ["reader", "writer", "admin"] * 4))
    assert created.count(True) == 1
    assert len(credentials.list_basic_credentials()) == 1


def test_basic_users_survive_a_reset_and_stay_apart_from_tokens(
    catalog: Catalog, credentials: Credentials
) -> None:
    user, token = basic_user("keep"), stored_token("keep-me")
    credentials.create_basic_credential(user)
    credentials.create_token(token)
    catalog.reset()
    assert credentials.get_basic_credential("keep") == user
    assert credentials.list_tokens() == [token]
    assert credentials.list_basic_credentials() == [user]
    assert catalog.all_collections() == []


def test_all_collections_spans_tenants_and_databases(catalog: Catalog) -> None:
    catalog.create_tenant("acme")
    catalog.create_database("acme", "main")
    first, _ = catalog.create_collection(factories.collection(name="one"), False)
    second, _ = catalog.create_collection(
        factories.collection(name="two", tenant="acme", database="main"), False
    )
    assert {c.id for c in catalog.all_collections()} == {first.id, second.id}


# ------------------------------------------------------------------ fork lineage


def fork_of(catalog: Catalog, source: Collection, name: str) -> Collection:
    fork = dataclasses.replace(source, id=str(uuid.uuid4()), name=name)
    return catalog.fork_collection(fork, source.id)


def test_a_fork_is_a_collection_recorded_under_its_source(catalog: Catalog) -> None:
    source, _ = catalog.create_collection(
        factories.collection(name="source", metadata={"k": 1}), False
    )
    assert catalog.lineage(source.id) is None

    fork = fork_of(catalog, source, "fork")

    assert catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "fork") == fork
    assert fork.metadata == {"k": 1}
    lineage = catalog.lineage(fork.id)
    assert lineage == catalog.lineage(source.id)
    assert lineage is not None
    assert (lineage.root, dict(lineage.parents), lineage.fork_count) == (
        source.id,
        {fork.id: source.id},
        1,
    )
    assert lineage.live == {source.id, fork.id}


def test_forks_of_forks_share_the_root_lineage(catalog: Catalog) -> None:
    root, _ = catalog.create_collection(factories.collection(name="root"), False)
    first = fork_of(catalog, root, "first")
    second = fork_of(catalog, root, "second")
    grandchild = fork_of(catalog, first, "grandchild")

    for member in (root, first, second, grandchild):
        lineage = catalog.lineage(member.id)
        assert lineage is not None
        assert lineage.root == root.id
        assert lineage.fork_count == 3
        assert lineage.parents[grandchild.id] == first.id


def test_deleted_collections_stay_in_their_lineage(catalog: Catalog) -> None:
    root, _ = catalog.create_collection(factories.collection(name="root"), False)
    fork = fork_of(catalog, root, "fork")
    catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "root")

    lineage = catalog.lineage(root.id)
    assert lineage is not None
    assert lineage == catalog.lineage(fork.id)
    assert lineage.live == {fork.id}
    assert lineage.held() == {root.id, fork.id}  # the fork still needs the root's files
    assert catalog.lineages() == [lineage]

    catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "fork")
    lineage = catalog.lineage(fork.id)
    assert lineage is not None
    assert (lineage.fork_count, lineage.live, lineage.held()) == (1, frozenset(), frozenset())

    catalog.forget_lineage(root.id)
    assert catalog.lineage(root.id) is None
    assert catalog.lineage(fork.id) is None
    assert catalog.lineages() == []


def test_a_fork_name_is_unique_in_its_database(catalog: Catalog) -> None:
    source, _ = catalog.create_collection(factories.collection(name="source"), False)
    catalog.create_collection(factories.collection(name="taken"), False)
    with pytest.raises(UniqueConstraintError, match=r"Collection \[taken\] already exists"):
        fork_of(catalog, source, "taken")
    assert catalog.lineage(source.id) is None


def test_a_deleted_source_cannot_be_forked(catalog: Catalog) -> None:
    source, _ = catalog.create_collection(factories.collection(name="source"), False)
    catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "source")
    with pytest.raises(NotFoundError):
        fork_of(catalog, source, "late")
    with pytest.raises(NotFoundError):
        catalog.get_collection(DEFAULT_TENANT, DEFAULT_DATABASE, "late")
    assert catalog.lineage(source.id) is None


def test_reset_forgets_every_lineage(catalog: Catalog) -> None:
    source, _ = catalog.create_collection(factories.collection(name="source"), False)
    fork_of(catalog, source, "fork")
    catalog.reset()
    assert catalog.lineages() == []


def test_a_fork_racing_its_source_deletion_fails_or_holds_the_source(catalog: Catalog) -> None:
    def fork(source: Collection) -> bool:
        try:
            fork_of(catalog, source, f"fork-of-{source.name}")
        except NotFoundError:
            return False
        return True

    for attempt in range(4):
        source, _ = catalog.create_collection(factories.collection(name=f"source-{attempt}"), False)
        with ThreadPoolExecutor(2) as pool:
            forked = pool.submit(fork, source)
            catalog.delete_collection(DEFAULT_TENANT, DEFAULT_DATABASE, source.name)
        lineage = catalog.lineage(source.id)
        if forked.result():
            assert lineage is not None and source.id in lineage.held()
        else:
            assert lineage is None
