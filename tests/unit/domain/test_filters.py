"""Filter validation (Chroma's messages) and translation (quoting, typing) on a real store.

The exhaustive tables at the end compare the real LanceDB store with the pure-Python oracle on
every (stored value, operator, operand) combination of the numeric edge values, and on regex and
substring needles made of the characters SQL and LIKE treat specially.
"""

from __future__ import annotations

import math
import re
import reprlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from chroma_serverless.domain import filters
from chroma_serverless.domain.filters import MAX_DEPTH, validate_where, validate_where_document
from chroma_serverless.errors import InvalidArgumentError
from chroma_serverless.records import layout
from chroma_serverless.records.sql import to_sql
from chroma_serverless.types import Collection, DeleteRequest, Filter, GetRequest, RecordBatch
from tests import factories
from tests.support import oracle
from tests.support.oracle import Record
from tests.support.strategies import INT64_MAX, INT64_MIN, SPECIAL_FLOATS, SPECIAL_INTS

if TYPE_CHECKING:
    from chroma_serverless.records.store import LanceRecordStore

FIELD_OPERATORS = "$eq, $ne, $in, $nin, $contains, $not_contains, $gt, $gte, $lt, $lte"
DOCUMENT_OPERATORS = "$contains, $not_contains, $regex, $not_regex"


def nested(depth: int, leaf: dict[str, Any], logical: str = "$and") -> dict[str, Any]:
    """``leaf`` wrapped in ``depth`` levels of ``logical`` (the leaf sits at ``depth``)."""
    clause = leaf
    for _ in range(depth):
        clause = {logical: [clause]}
    return clause


# --------------------------------------------------------------------------- validation


VALID_WHERES: list[dict[str, Any]] = [
    {"k": "v"},
    {"k": 1},
    {"k": 1.5},
    {"k": True},
    {"k": INT64_MAX},
    {"k": INT64_MIN},
    {"k": {"$eq": "v"}},
    {"k": {"$ne": False}},
    {"k": {"$gt": 1}},
    {"k": {"$gte": -2.5}},
    {"k": {"$lt": INT64_MIN}},
    {"k": {"$lte": 1e300}},
    {"k": {"$in": ["a", "b"]}},
    {"k": {"$nin": [1, 2]}},
    {"k": {"$in": [True]}},
    {"k": {"$contains": "x"}},
    {"k": {"$not_contains": 1.5}},
    {"#document": {"$contains": "x"}},
    {"#document": {"$not_regex": "^x"}},
    {"$and": [{"a": 1}, {"b": {"$ne": 2}}]},
    {"$or": [{"a": 1}, {"$and": [{"b": 2}, {"c": 3}]}]},
    {"$and": [{"a": 1}]},  # the Rust server accepts a single child
    {"a.b' OR 1=1 --": "x' OR '1'='1"},
    {"k": ""},
    nested(MAX_DEPTH, {"k": 1}),
]


@pytest.mark.parametrize("where", VALID_WHERES, ids=reprlib.repr)
def test_valid_where_passes(where: dict[str, Any]) -> None:
    validate_where(where)


VALID_WHERE_DOCUMENTS: list[dict[str, Any]] = [
    {"$contains": "x"},
    {"$not_contains": "' OR 1=1 --"},
    {"$regex": "^[Hh]ello"},
    {"$not_regex": "a.b"},
    {"$and": [{"$contains": "a"}, {"$or": [{"$regex": "b"}, {"$not_contains": "c"}]}]},
    nested(MAX_DEPTH, {"$contains": "x"}, "$or"),
]


@pytest.mark.parametrize("where_document", VALID_WHERE_DOCUMENTS, ids=reprlib.repr)
def test_valid_where_document_passes(where_document: dict[str, Any]) -> None:
    validate_where_document(where_document)


INVALID_WHERES: list[tuple[Any, str]] = [
    ([{"k": 1}], "Expected where to be a dict, got [{'k': 1}]"),
    ("k", "Expected where to be a dict, got k"),
    ({}, "Expected where to have exactly one operator, got {}"),
    ({"a": 1, "b": 2}, "Expected where to have exactly one operator, got {'a': 1, 'b': 2}"),
    ({"$not": {"k": 1}}, "Expected where key to be a metadata key or $and/$or, got $not"),
    ({"$contains": "x"}, "Expected where key to be a metadata key or $and/$or, got $contains"),
    (
        {"k": [1, 2]},
        "Expected where value to be a str, int, float, or operator expression, got [1, 2]",
    ),
    (
        {"k": None},
        "Expected where value to be a str, int, float, or operator expression, got None",
    ),
    (
        {"k": {"$gt": 1, "$lt": 3}},
        "Expected operator expression to have exactly one operator, got {'$gt': 1, '$lt': 3}",
    ),
    ({"k": {}}, "Expected operator expression to have exactly one operator, got {}"),
    (
        {"k": {"$regex": "x"}},
        f"Expected where operator to be one of {FIELD_OPERATORS}, got $regex",
    ),
    (
        {"k": {"$exists": True}},
        f"Expected where operator to be one of {FIELD_OPERATORS}, got $exists",
    ),
    (
        {"k": {"$gt": "x"}},
        "Expected operand value to be an int or a float for operator $gt, got x",
    ),
    (
        {"k": {"$lte": True}},
        "Expected operand value to be an int or a float for operator $lte, got True",
    ),
    (
        {"k": {"$in": []}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got []",
    ),
    (
        {"k": {"$in": [1, "a"]}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got [1, 'a']",
    ),
    (
        {"k": {"$nin": [1, 1.5]}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got [1, 1.5]",
    ),
    (
        {"k": {"$in": [True, 1]}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got [True, 1]",
    ),
    (
        {"k": {"$in": "abc"}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got abc",
    ),
    (
        {"k": {"$in": [[1]]}},
        "Expected where operand value to be a non-empty list, and all values to be of the "
        "same type got [[1]]",
    ),
    (
        {"k": {"$eq": [1]}},
        "Expected where operand value to be a str, int, float or bool for operator $eq, got [1]",
    ),
    (
        {"k": {"$contains": {"a": 1}}},
        "Expected where operand value to be a str, int, float or bool for operator $contains, "
        "got {'a': 1}",
    ),
    (
        {"$and": {"k": 1}},
        "Expected where value for $and to be a non-empty list of where expressions, got {'k': 1}",
    ),
    (
        {"$or": []},
        "Expected where value for $or to be a non-empty list of where expressions, got []",
    ),
    (
        {"$and": [{"k": 1}, {"k": {"$gt": "x"}}]},
        "Expected operand value to be an int or a float for operator $gt, got x",
    ),
    ({"$or": [{"k": 1}, "k"]}, "Expected where to be a dict, got k"),
    (
        {"#document": {"$eq": "x"}},
        f"Expected where operator for #document to be one of {DOCUMENT_OPERATORS}, got $eq",
    ),
    (
        {"#document": {"$contains": ""}},
        "Expected where operand value for #document to be a non-empty str, got ",
    ),
    (
        {"#document": {"$regex": 1}},
        "Expected where operand value for #document to be a non-empty str, got 1",
    ),
    ({"k": math.nan}, "Expected where value to be a finite number, got nan"),
    ({"k": -math.inf}, "Expected where value to be a finite number, got -inf"),
    ({"k": {"$gt": math.inf}}, "Expected where operand value to be a finite number, got inf"),
    ({"k": {"$ne": math.nan}}, "Expected where operand value to be a finite number, got nan"),
    (
        {"k": {"$in": [1.0, math.nan]}},
        "Expected where operand value to be a finite number, got nan",
    ),
    (
        {"k": INT64_MAX + 1},
        "Expected where value to fit in a 64-bit integer, got 9223372036854775808",
    ),
    (
        {"k": {"$lt": INT64_MIN - 1}},
        "Expected where operand value to fit in a 64-bit integer, got -9223372036854775809",
    ),
    (
        {"k": {"$nin": [1, 2**64]}},
        "Expected where operand value to fit in a 64-bit integer, got 18446744073709551616",
    ),
    (
        {"k": {"$contains": -(2**70)}},
        "Expected where operand value to fit in a 64-bit integer, got -1180591620717411303424",
    ),
    (
        nested(MAX_DEPTH + 1, {"k": 1}),
        f"Expected where to be nested at most {MAX_DEPTH} levels deep",
    ),
    (
        nested(10_000, {"k": 1}, "$or"),
        f"Expected where to be nested at most {MAX_DEPTH} levels deep",
    ),
]


@pytest.mark.parametrize(("where", "message"), INVALID_WHERES, ids=reprlib.repr)
def test_invalid_where_is_rejected_with_chroma_message(where: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        validate_where(where)
    assert error.value.message == message


INVALID_WHERE_DOCUMENTS: list[tuple[Any, str]] = [
    ("x", "Expected where document to be a dict, got x"),
    ({}, "Expected where document to have exactly one operator, got {}"),
    (
        {"$contains": "a", "$regex": "b"},
        "Expected where document to have exactly one operator, "
        "got {'$contains': 'a', '$regex': 'b'}",
    ),
    (
        {"$eq": "x"},
        f"Expected where document operator to be one of {DOCUMENT_OPERATORS}, $and, $or, got $eq",
    ),
    (
        {"#document": {"$contains": "x"}},
        "Expected where document operator to be one of "
        f"{DOCUMENT_OPERATORS}, $and, $or, got #document",
    ),
    (
        {"$contains": ""},
        "Expected where document operand value for operator $contains to be a non-empty str, got ",
    ),
    (
        {"$regex": ""},
        "Expected where document operand value for operator $regex to be a non-empty str, got ",
    ),
    (
        {"$not_contains": 1},
        "Expected where document operand value for operator $not_contains to be a non-empty "
        "str, got 1",
    ),
    (
        {"$and": {"$contains": "x"}},
        "Expected where document value for $and to be a non-empty list of where document "
        "expressions, got {'$contains': 'x'}",
    ),
    (
        {"$or": []},
        "Expected where document value for $or to be a non-empty list of where document "
        "expressions, got []",
    ),
    (
        {"$or": [{"$contains": "x"}, {"$contains": ""}]},
        "Expected where document operand value for operator $contains to be a non-empty str, got ",
    ),
    (
        nested(MAX_DEPTH + 1, {"$contains": "x"}),
        f"Expected where document to be nested at most {MAX_DEPTH} levels deep",
    ),
    (
        nested(10_000, {"$contains": "x"}),
        f"Expected where document to be nested at most {MAX_DEPTH} levels deep",
    ),
]


@pytest.mark.parametrize(("where_document", "message"), INVALID_WHERE_DOCUMENTS, ids=reprlib.repr)
def test_invalid_where_document_is_rejected_with_chroma_message(
    where_document: Any, message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        validate_where_document(where_document)
    assert error.value.message == message


# --------------------------------------------------------------------------- translation

MALICIOUS = "x' OR '1'='1"


def test_string_values_are_quoted_with_doubled_quotes() -> None:
    sql = to_sql(Filter(where={"k": MALICIOUS}), {"ms_k"})
    assert sql == "(`ms_k` = 'x'' OR ''1''=''1')"


def test_ids_and_document_needles_are_quoted() -> None:
    sql = to_sql(Filter(ids=["a'b", "' OR 1=1 --"], where_document={"$contains": "it's"}), ())
    assert sql == "(`id` IN ('a''b', ''' OR 1=1 --')) AND (strpos(`document`, 'it''s') > 0)"


@pytest.mark.parametrize("key", ["a`b", "` OR 1=1 --", "a.b", "é 中", "K", "k"])
def test_keys_become_encoded_backticked_identifiers(key: str) -> None:
    column = layout.metadata_column(key, "s")
    assert re.fullmatch(r"ms_[A-Za-z0-9_]+", column)
    sql = to_sql(Filter(where={key: "v"}), {column})
    assert sql == f"(`{column}` = 'v')"


def test_keys_never_written_translate_to_constants() -> None:
    """No column for the key: positive predicates are FALSE, negations match every record."""
    assert to_sql(Filter(where={"k": 1}), ()) == "(FALSE)"
    assert to_sql(Filter(where={"k": {"$ne": "x"}}), ()) == "((FALSE) IS NOT TRUE)"
    assert to_sql(Filter(where={"k": {"$contains": 1}}), {"mi_k"}) == "(FALSE)"


def test_numbers_compare_across_int_and_float_columns() -> None:
    columns = {"mi_k", "mf_k"}
    assert to_sql(Filter(where={"k": 2}), columns) == "(`mf_k` = 2 OR `mi_k` = 2)"
    assert to_sql(Filter(where={"k": 2.5}), columns) == "(`mf_k` = 2.5)"
    assert to_sql(Filter(where={"k": {"$gt": 1.5}}), columns) == "(`mf_k` > 1.5 OR `mi_k` > 1)"
    assert to_sql(Filter(where={"k": {"$lt": 1.5}}), columns) == "(`mf_k` < 1.5 OR `mi_k` < 2)"
    assert to_sql(Filter(where={"k": True}), columns | {"mb_k"}) == "(`mb_k` = TRUE)"


def test_every_validated_clause_translates() -> None:
    columns = {layout.metadata_column(k, kind) for k in ("k", "a", "b", "c") for kind in "sifb"}
    for where in VALID_WHERES:
        assert to_sql(Filter(where=where), columns)
    for where_document in VALID_WHERE_DOCUMENTS:
        assert to_sql(Filter(where_document=where_document), columns)


# --------------------------------------------------------------------------- on a real store


def write(store: LanceRecordStore, records: list[Record]) -> Collection:
    collection = factories.collection(name="filters", configuration={}, dimension=2)
    store.add(
        collection,
        RecordBatch(
            ids=[r.id for r in records],
            embeddings=np.zeros((len(records), 2), dtype=np.float32),
            metadatas=[r.metadata for r in records],
            documents=[r.document for r in records],
        ),
    )
    return collection


def selected(
    store: LanceRecordStore,
    collection: Collection,
    where: dict[str, Any] | None = None,
    where_document: dict[str, Any] | None = None,
    ids: list[str] | None = None,
) -> set[str]:
    request = GetRequest(filter=Filter(ids=ids, where=where, where_document=where_document))
    return set(store.get(collection, request).ids)


ADVERSARIAL_RECORDS = [
    Record("plain", {"k": "x", "a.b": 1}, "plain text"),
    Record("quote", {"k": MALICIOUS, "a_2Eb": 2}, "it's 100% done"),
    Record("one", {"k": "1", "K": "x"}, "under_score and back\\slash"),
    Record("' OR 1=1 --", {"k": "' OR 1=1 --", "`": "`"}, "%"),
    Record("none", None, None),
]


def test_malicious_values_filter_exactly_as_written(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    assert selected(record_store, c, {"k": MALICIOUS}) == {"quote"}
    assert selected(record_store, c, {"k": "x' OR 1=1 --"}) == set()
    assert selected(record_store, c, {"k": "' OR 1=1 --"}) == {"' OR 1=1 --"}
    assert selected(record_store, c, {"k": {"$ne": MALICIOUS}}) == {
        "plain",
        "one",
        "' OR 1=1 --",
        "none",
    }
    assert selected(record_store, c, {"k": {"$in": ["x' OR '1'='1", "%", "_"]}}) == {"quote"}
    assert selected(record_store, c, ids=["' OR 1=1 --"]) == {"' OR 1=1 --"}
    assert selected(record_store, c, ids=["x' OR '1'='1"]) == set()
    assert selected(record_store, c, {"`": "`"}) == {"' OR 1=1 --"}


def test_keys_that_look_like_encodings_stay_apart(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    assert selected(record_store, c, {"a.b": {"$gte": 1}}) == {"plain"}
    assert selected(record_store, c, {"a_2Eb": {"$gte": 1}}) == {"quote"}
    assert selected(record_store, c, {"K": "x"}) == {"one"}
    assert selected(record_store, c, {"k": "x"}) == {"plain"}


def test_like_wildcards_in_needles_are_literal(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    assert selected(record_store, c, where_document={"$contains": "%"}) == {
        "quote",
        "' OR 1=1 --",
    }
    assert selected(record_store, c, where_document={"$contains": "_"}) == {"one"}
    assert selected(record_store, c, where_document={"$contains": "'s 1"}) == {"quote"}
    assert selected(record_store, c, where_document={"$contains": "\\"}) == {"one"}
    assert selected(record_store, c, where_document={"$not_contains": "%"}) == {
        "plain",
        "one",
        "none",
    }


def test_where_on_missing_document_and_metadata(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    everyone = {r.id for r in ADVERSARIAL_RECORDS}
    assert selected(record_store, c, {"#document": {"$not_contains": "zzz"}}) == everyone
    assert selected(record_store, c, {"#document": {"$not_regex": "."}}) == {"none"}
    assert selected(record_store, c, {"nobody": {"$nin": ["x"]}}) == everyone
    assert selected(record_store, c, {"k": {"$not_contains": "x"}}) == everyone


def test_id_filters_select_by_record_id(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    everyone = {r.id for r in ADVERSARIAL_RECORDS}
    assert selected(record_store, c, {"#id": "' OR 1=1 --"}) == {"' OR 1=1 --"}
    assert selected(record_store, c, {"#id": {"$in": ["one", "quote", "ghost"]}}) == {
        "one",
        "quote",
    }
    assert selected(record_store, c, {"#id": {"$nin": ["one", "ghost"]}}) == everyone - {"one"}
    either = {"$or": [{"#id": {"$eq": "plain"}}, {"k": "x"}]}
    assert selected(record_store, c, either) == {"plain"}
    assert selected(record_store, c, {"#id": {"$ne": "none"}}) == everyone - {"none"}


def test_delete_with_malicious_where_deletes_only_the_match(
    record_store: LanceRecordStore,
) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    deleted = record_store.delete(c, DeleteRequest(filter=Filter(where={"k": MALICIOUS})))
    assert deleted == 1
    assert set(record_store.get(c, GetRequest()).ids) == {r.id for r in ADVERSARIAL_RECORDS} - {
        "quote"
    }


def test_invalid_regex_is_an_invalid_argument(record_store: LanceRecordStore) -> None:
    c = write(record_store, ADVERSARIAL_RECORDS)
    with pytest.raises(InvalidArgumentError):
        selected(record_store, c, where_document={"$regex": "("})


# --------------------------------------------------------------------------- exhaustive tables

NUMBERS: list[int | float] = [
    *SPECIAL_INTS,
    *SPECIAL_FLOATS,
    -(2**53) - 1.0,
    9007199254740994.0,
    3,
    3.0,
    -2,
    -2.0,
    2.5,
]
STORED_VALUES: list[Any] = [
    *NUMBERS,
    True,
    False,
    "1",
    "2.0",
    "",
    [1, 2],
    [2.0, 1.5],
    [True],
    ["1"],
    [INT64_MIN, INT64_MAX],
]


def numeric_records() -> list[Record]:
    records = [Record(f"r{i}", {"n": value}, None) for i, value in enumerate(STORED_VALUES)]
    return [*records, Record("no-n", {"other": 1}, None), Record("no-metadata", None, None)]


def mismatches(
    store: LanceRecordStore, collection: Collection, records: list[Record], wheres: list[Any]
) -> list[str]:
    """Every where whose store result differs from the oracle, with both results."""
    found = []
    for where in wheres:
        filters.validate_where(where)
        want = oracle.select(records, where)
        try:
            got: Any = selected(store, collection, where)
        except Exception as error:  # every failure is reported in one list
            got = f"{type(error).__name__}: {str(error)[:300]}"
        if got != want:
            found.append(f"{where!r}: store {got!r}, oracle {sorted(want)!r}")
    return found


@pytest.mark.parametrize("operator", ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
def test_numeric_edges_match_the_oracle(record_store: LanceRecordStore, operator: str) -> None:
    """Every stored number, bool, string and array against every numeric edge operand."""
    records = numeric_records()
    c = write(record_store, records)
    wheres: list[dict[str, Any]] = [{"n": {operator: value}} for value in NUMBERS]
    if operator == "$eq":
        wheres += [{"n": value} for value in [*NUMBERS, True, False, "1"]]
    found = mismatches(record_store, c, records, wheres)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("operator", ["$in", "$nin", "$contains", "$not_contains"])
def test_numeric_lists_and_arrays_match_the_oracle(
    record_store: LanceRecordStore, operator: str
) -> None:
    records = numeric_records()
    c = write(record_store, records)
    if operator in ("$in", "$nin"):
        operands: list[Any] = [[v] for v in NUMBERS]
        operands += [list(SPECIAL_INTS), list(SPECIAL_FLOATS), [True, False], ["1", ""]]
    else:
        operands = [*NUMBERS, True, False, "1"]
    wheres = [{"n": {operator: operand}} for operand in operands]
    found = mismatches(record_store, c, records, wheres)
    assert not found, "\n".join(found)


DOCUMENTS = [
    "a\\b",
    "ab",
    "a%b",
    "a_b",
    "axb",
    "%",
    "_",
    "\\",
    "it's",
    "A.B",
    "a.b",
    "\\\\",
    "中文 😀",
    "line\nbreak",
    "",
]
NEEDLES = ["\\", "a\\b", "\\\\", "%", "_", "a%b", "a_b", "'", "it's", ".", "中", "😀", "\n"]
REGEXES = [
    "\\\\",
    "a\\\\b",
    "^a\\\\",
    "[\\\\]",
    "\\x5C",
    "(a\\\\b|x)",
    "%",
    "a%b",
    "_",
    "a_b",
    "^a",
    "a.b",
    "\\.",
    "'",
    "it's",
    "中",
    "😀",
    "^$",
    "[%_]",
    "line.break",
    "\\n",
]


def test_document_needles_match_the_oracle(record_store: LanceRecordStore) -> None:
    records = [Record(f"d{i}", None, doc) for i, doc in enumerate(DOCUMENTS)]
    records.append(Record("no-document", None, None))
    c = write(record_store, records)
    found = []
    for operator in ("$contains", "$not_contains"):
        for needle in NEEDLES:
            where_document = {operator: needle}
            want = oracle.select(records, where_document=where_document)
            got = selected(record_store, c, where_document=where_document)
            if got != want:
                found.append(f"{where_document!r}: store {sorted(got)}, oracle {sorted(want)}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("regex", REGEXES)
def test_document_regexes_match_the_oracle(record_store: LanceRecordStore, regex: str) -> None:
    """Literal regexes are rewritten by the engine into LIKE; a backslash must survive that."""
    records = [Record(f"d{i}", None, doc) for i, doc in enumerate(DOCUMENTS)]
    records.append(Record("no-document", None, None))
    c = write(record_store, records)
    found = []
    for where_document in ({"$regex": regex}, {"$not_regex": regex}):
        want = oracle.select(records, where_document=where_document)
        got = selected(record_store, c, where_document=where_document)
        if got != want:
            docs = {r.id: repr(r.document) for r in records}
            found.append(
                f"{where_document!r}: store {sorted(docs[i] for i in got)}"
                f", oracle {sorted(docs[i] for i in want)}"
            )
    assert not found, "\n".join(found)
