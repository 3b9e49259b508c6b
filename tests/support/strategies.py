"""Hypothesis strategies for records and Chroma filters, with adversarial keys and values.

Each generated :class:`Dataset` draws small per-example *pools* (keys, strings, ints, floats and
document fragments) and builds both the records and the filters from them, so filters hit stored
keys and values often. Pools mix types under one key (int and float and str and bool and arrays),
and are seeded with text meant to break SQL quoting or the column-name encoding of
:mod:`chroma_serverless.records.layout`: quotes, backslashes, ``%``, ``_``, backticks, SQL
fragments, ``.``, spaces, ``_2E``-like escapes, accents, CJK and emoji.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from tests.support.oracle import Record

if TYPE_CHECKING:
    from collections.abc import Callable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

ADVERSARIAL_TEXT = (
    "'",
    '"',
    "\\",
    "\\\\",
    "\\'",
    "''",
    "%",
    "_",
    "%_",
    "`",
    "``",
    "' OR 1=1 --",
    "x' OR '1'='1",
    ") OR (",
    "') OR ('a'='a",
    "`) OR (`",
    "; DROP TABLE t; --",
    "/*",
    "*/",
    "NULL",
    "TRUE",
    "a.b",
    "a b",
    "_2E",
    "a_2Eb",
    "_5F",
    "café",
    "naïve",
    "Ünïcödé",
    "中文",
    "日本語",
    "😀",
    "👩‍💻",
    "\t",
    "\n",
    "{}",
    "[]",
    "$",
    "#",
)
ADVERSARIAL_KEYS = (
    "k",
    "K",
    "a.b",
    "a_2Eb",
    "a_5F2Eb",
    "_2E",
    ".",
    "..",
    "_",
    "__",
    "a b",
    " ",
    "x'y",
    "''",
    'q"',
    "back`tick",
    "back\\slash",
    "%",
    "%_%",
    "' OR 1=1 --",
    ") OR (",
    "`) OR (`",
    "id",
    "document",
    "embedding",
    "uri",
    "_distance",
    "ms_k",
    "mi_k",
    "mia_k",
    "é",
    "E\u0301",
    "中文",
    "😀",
    "k😀.v",
)
SPECIAL_INTS = (
    0,
    1,
    2,
    -1,
    -3,
    2**31,
    2**53,
    2**53 + 1,
    -(2**53) - 1,
    INT64_MAX,
    INT64_MAX - 1,
    INT64_MIN,
    INT64_MIN + 1,
)
SPECIAL_FLOATS = (
    0.0,
    -0.0,
    0.5,
    1.5,
    2.0,
    -2.5,
    0.1,
    1e-05,
    5e-324,
    1e16,
    2.0**53,
    9.3e18,
    -9.3e18,
    2.0**63,
    -(2.0**63),
    1e300,
    -1.7976931348623157e308,
)
CHARACTERS = "abcxyzAB019" + "'\"\\%_`.-;:,()*+?[]{}|^$#&~/= " + "\t\n" + "éüßñ\u0301中文字日😀🎉"
ALPHABET = st.sampled_from(CHARACTERS)
# Characters SQL string literals, LIKE patterns and regexes each treat specially.
SQL_SPECIAL = st.sampled_from(("\\", "%", "_", "'", "a\\b", "\\\\", "\\%", "''"))
# Operands at the ends of int64, as int and as float.
NUMERIC_BOUNDS = (INT64_MIN, INT64_MAX, -(2.0**63), 2.0**63)

# Regex pieces both Python's ``re`` and Rust's ``regex`` crate read the same way.
REGEX_META = set("\\.+*?()|[]{}^$")
REGEX_CLASS_ITEMS = (*"abcxyzAB019", "\\\\", "%", "_", "'", ".", "é", "中")


def text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ADVERSARIAL_TEXT), st.text(ALPHABET, max_size=6))


def keys() -> st.SearchStrategy[str]:
    """Metadata keys; ``$``/``#`` prefixes are reserved for operators and ``#document``."""
    generated = st.text(ALPHABET, min_size=1, max_size=6).filter(lambda k: k[0] not in "$#")
    return st.one_of(st.sampled_from(ADVERSARIAL_KEYS), generated)


def ints() -> st.SearchStrategy[int]:
    special = st.sampled_from(SPECIAL_INTS)
    return st.one_of(special, special, st.integers(-3, 3))


def floats() -> st.SearchStrategy[float]:
    special = st.sampled_from(SPECIAL_FLOATS)
    return st.one_of(
        special,
        special,
        st.integers(-3, 3).map(float),
        st.floats(-4, 4, allow_nan=False, allow_infinity=False),
    )


@dataclass(frozen=True)
class Pools:
    """Small per-example value pools shared by records and filters."""

    keys: list[str]
    strings: list[str]
    ints: list[int]
    floats: list[float]
    tokens: list[str]
    missing_key: str = "zz key nobody stores"

    def scalar(self) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.sampled_from(self.strings),
            st.sampled_from(self.ints),
            st.sampled_from(self.floats),
            st.booleans(),
        )

    def number(self) -> st.SearchStrategy[int | float]:
        return st.one_of(st.sampled_from(self.ints), st.sampled_from(self.floats))

    def homogeneous_list(self) -> st.SearchStrategy[list[Any]]:
        """A non-empty list of one type (bool counted apart from int)."""
        return st.one_of(
            st.lists(st.sampled_from(self.strings), min_size=1, max_size=3),
            st.lists(st.sampled_from(self.ints), min_size=1, max_size=3),
            st.lists(st.sampled_from(self.floats), min_size=1, max_size=3),
            st.lists(st.booleans(), min_size=1, max_size=3),
        )

    def value(self) -> st.SearchStrategy[Any]:
        """A metadata value: a scalar or a homogeneous array."""
        return st.one_of(self.scalar(), self.scalar(), self.homogeneous_list())

    def key(self) -> st.SearchStrategy[str]:
        """A filter key: mostly a stored one, sometimes one no record holds."""
        return st.one_of(
            st.sampled_from(self.keys),
            st.sampled_from(self.keys),
            st.just(self.missing_key),
        )


@st.composite
def pools(draw: st.DrawFn) -> Pools:
    return Pools(
        keys=draw(st.lists(keys(), min_size=1, max_size=4, unique=True)),
        strings=draw(st.lists(text(), min_size=1, max_size=4, unique=True)),
        ints=draw(st.lists(ints(), min_size=1, max_size=4, unique=True)),
        floats=draw(st.lists(floats(), min_size=1, max_size=4)),
        tokens=draw(st.lists(text(), min_size=1, max_size=5)),
    )


@dataclass(frozen=True)
class Dataset:
    pools: Pools
    records: list[Record]
    embeddings: list[list[float]]
    dimension: int
    extra_ids: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def stored(self) -> list[tuple[str, Any]]:
        """Every stored (key, value) pair."""
        return [(k, v) for r in self.records for k, v in (r.metadata or {}).items()]


def metadata(p: Pools) -> st.SearchStrategy[dict[str, Any] | None]:
    """``None`` or a non-empty dict over the pool's keys."""
    chosen = st.lists(st.sampled_from(p.keys), min_size=1, max_size=len(p.keys), unique=True)
    dictionaries = chosen.flatmap(lambda ks: st.fixed_dictionaries({k: p.value() for k in ks}))
    return st.one_of(dictionaries, dictionaries, dictionaries, st.none())


def document(p: Pools) -> st.SearchStrategy[str | None]:
    token = st.one_of(st.sampled_from(p.tokens), st.sampled_from(p.tokens), SQL_SPECIAL)
    return st.one_of(
        st.lists(token, max_size=4).map("".join),
        st.text(ALPHABET, max_size=8),
        st.none(),
    )


def record_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ADVERSARIAL_TEXT).filter(bool), st.text(ALPHABET, min_size=1))


@st.composite
def datasets(draw: st.DrawFn, min_records: int = 0, max_records: int = 12) -> Dataset:
    p = draw(pools())
    ids = draw(st.lists(record_ids(), min_size=min_records, max_size=max_records, unique=True))
    dimension = draw(st.integers(2, 4))
    coordinate = st.integers(-8, 8).map(float)
    records = [Record(i, draw(metadata(p)), draw(document(p))) for i in ids]
    embeddings = [draw(st.lists(coordinate, min_size=dimension, max_size=dimension)) for _ in ids]
    extra_ids = draw(
        st.lists(record_ids(), max_size=2).map(lambda xs: [x for x in xs if x not in ids])
    )
    return Dataset(p, records, embeddings, dimension, extra_ids)


# --------------------------------------------------------------------------- documents


def document_needle(p: Pools) -> st.SearchStrategy[str]:
    """A non-empty substring of some token, one character, or short text."""
    tokens = [t for t in p.tokens if t] or ["a"]

    @st.composite
    def slice_of_token(draw: st.DrawFn) -> str:
        token = draw(st.sampled_from(tokens))
        start = draw(st.integers(0, len(token) - 1))
        stop = draw(st.integers(start + 1, len(token)))
        return token[start:stop]

    return st.one_of(
        slice_of_token(), ALPHABET, SQL_SPECIAL, st.text(ALPHABET, min_size=1, max_size=3)
    )


def regex_literal(text: str) -> str:
    """Escape only the metacharacters; other punctuation stays literal in both dialects."""
    return "".join("\\" + c if c in REGEX_META else c for c in text)


@st.composite
def regexes(draw: st.DrawFn, p: Pools) -> str:
    """A small regex in the common subset of Python ``re`` and Rust ``regex``.

    No ``$`` (Python also matches before a trailing newline), no ``\\b``/``\\w`` (Unicode tables
    differ), no case folding, no class operators. A pure literal is drawn often on purpose: the
    engine rewrites literal regexes into LIKE patterns, a path that needs its own escaping.
    """
    needle = document_needle(p)
    if draw(st.booleans()):
        return regex_literal(draw(needle))
    atom = st.one_of(
        needle.map(regex_literal),
        st.just("."),
        st.lists(st.sampled_from(REGEX_CLASS_ITEMS), min_size=1, max_size=3, unique=True).map(
            lambda cs: "[" + "".join(cs) + "]"
        ),
        st.tuples(needle, needle).map(
            lambda ab: f"({regex_literal(ab[0])}|{regex_literal(ab[1])})"
        ),
    )
    quantifier = st.sampled_from(("", "", "?", "*", "+"))
    parts = draw(st.lists(st.tuples(atom, quantifier).map("".join), min_size=1, max_size=3))
    anchor = draw(st.sampled_from(("", "", "^")))
    return anchor + "".join(parts)


def document_operand(p: Pools, operator: str) -> st.SearchStrategy[str]:
    return regexes(p) if operator in ("$regex", "$not_regex") else document_needle(p)


def _document_leaf(p: Pools) -> st.SearchStrategy[tuple[str, str]]:
    operators = st.sampled_from(("$contains", "$not_contains", "$regex", "$not_regex"))
    return operators.flatmap(lambda op: document_operand(p, op).map(lambda v: (op, v)))


def _logical(
    children: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda op, xs: {op: xs},
        st.sampled_from(("$and", "$or")),
        st.lists(children, min_size=2, max_size=3),
    )


def where_documents(p: Pools, max_leaves: int = 4) -> st.SearchStrategy[dict[str, Any]]:
    leaf = _document_leaf(p).map(lambda pair: {pair[0]: pair[1]})
    return st.recursive(leaf, _logical, max_leaves=max_leaves)


# --------------------------------------------------------------------------- where


def twins(value: Any) -> list[Any]:
    """Operands near a stored scalar: itself, its int/float twin and its integer neighbours."""
    if isinstance(value, bool):
        return [value, not value]
    if isinstance(value, int):
        near = [v for v in (value - 1, value + 1) if INT64_MIN <= v <= INT64_MAX]
        return [value, value, float(value), *near]
    if isinstance(value, float):
        if not value.is_integer():
            return [value, value]
        # Ints at and around it: beyond 2**53 several of them round to this very float.
        around = {min(max(int(value) + d, INT64_MIN), INT64_MAX) for d in (-1, 0, 1)}
        return [value, value, *sorted(around)]
    return [value]


def same_type_pool(p: Pools, value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.sampled_from(p.ints)
    if isinstance(value, float):
        return st.sampled_from(p.floats)
    return st.sampled_from(p.strings)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@st.composite
def field_clause(draw: st.DrawFn, dataset: Dataset) -> dict[str, Any]:
    """A field clause, half the time aimed at a stored (key, value) or a near twin of it."""
    p = dataset.pools
    stored = dataset.stored
    scalar, number = p.scalar(), p.number()
    aimed: bool = draw(st.booleans())
    if stored and aimed:
        key, value = draw(st.sampled_from(stored))
        elements = value if isinstance(value, list) else [value]
        hints = [twin for element in elements for twin in twins(element)]
        scalar = st.one_of(st.sampled_from(hints), st.sampled_from(hints), scalar)
        numbers = [h for h in hints if is_number(h)]
        if numbers:
            number = st.one_of(st.sampled_from(numbers), st.sampled_from(numbers), number)
    else:
        key = draw(p.key())
    number = st.one_of(number, number, number, st.sampled_from(NUMERIC_BOUNDS))
    kind = draw(st.sampled_from(("shorthand", "equality", "ordering", "list", "contains")))
    if kind == "shorthand":
        return {key: draw(scalar)}
    if kind == "equality":
        return {key: {draw(st.sampled_from(("$eq", "$ne"))): draw(scalar)}}
    if kind == "ordering":
        return {key: {draw(st.sampled_from(("$gt", "$gte", "$lt", "$lte"))): draw(number)}}
    if kind == "list":
        first = draw(scalar)
        rest = draw(st.lists(same_type_pool(p, first), max_size=2))
        operand = draw(st.permutations([first, *rest]))
        return {key: {draw(st.sampled_from(("$in", "$nin"))): operand}}
    return {key: {draw(st.sampled_from(("$contains", "$not_contains"))): draw(scalar)}}


def wheres(dataset: Dataset, max_leaves: int = 5) -> st.SearchStrategy[dict[str, Any]]:
    p = dataset.pools
    document_leaf = _document_leaf(p).map(lambda pair: {"#document": {pair[0]: pair[1]}})
    fields = field_clause(dataset)
    leaf = st.one_of(fields, fields, fields, document_leaf)
    return st.recursive(leaf, _logical, max_leaves=max_leaves)


def id_filters(dataset: Dataset) -> st.SearchStrategy[list[str]]:
    """A non-empty id list: stored ids, ids of no record, adversarial text."""
    candidates = [*dataset.ids, *dataset.extra_ids, "' OR 1=1 --"]
    return st.lists(st.sampled_from(candidates), min_size=1, max_size=5, unique=True)


@dataclass(frozen=True)
class FilterCase:
    ids: list[str] | None
    where: dict[str, Any] | None
    where_document: dict[str, Any] | None


def optional(strategy: st.SearchStrategy[Any], weight: int = 1) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), *[strategy] * weight)


def filter_cases(
    dataset: Dataset, require: Callable[[FilterCase], bool] | None = None
) -> st.SearchStrategy[FilterCase]:
    """ids, where and where_document, each optional (ids least often)."""
    cases = st.builds(
        FilterCase,
        ids=st.one_of(st.none(), st.none(), id_filters(dataset)),
        where=optional(wheres(dataset), weight=3),
        where_document=optional(where_documents(dataset.pools)),
    )
    return cases if require is None else cases.filter(require)
