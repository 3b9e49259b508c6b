"""The column-name encoding of metadata keys: a readable, injective, SQL-safe round trip."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chroma_serverless.domain import columns
from chroma_serverless.records import layout
from tests.support.strategies import ADVERSARIAL_KEYS, keys

# Any text Python can encode to UTF-8 (no lone surrogates), including NUL and controls.
ANY_TEXT = st.text(st.characters(codec="utf-8"))
KINDS = columns.KINDS
ENCODED = re.compile(r"[A-Za-z0-9_]*")


@settings(max_examples=500)
@given(ANY_TEXT)
def test_decode_inverts_encode(key: str) -> None:
    encoded = layout.encode_key(key)
    assert ENCODED.fullmatch(encoded), encoded
    assert layout.decode_key(encoded) == key


@settings(max_examples=300)
@given(st.one_of(keys(), ANY_TEXT), st.one_of(keys(), ANY_TEXT))
def test_distinct_keys_never_share_an_encoding(a: str, b: str) -> None:
    if a != b:
        assert layout.encode_key(a) != layout.encode_key(b)


def test_adversarial_keys_are_injective() -> None:
    sample = [
        *ADVERSARIAL_KEYS,
        "a_2Eb",
        "a.b",
        "a_2eb",
        "_2E",
        "_5F2E",
        "__",
        "_",
        "",
        "A",
        "a",
        "_41",
        "\x00",
        "_00",
    ]
    encoded = {layout.encode_key(key): key for key in sample}
    assert len(encoded) == len(set(sample))


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("abc", "abc"),
        ("Key9", "Key9"),
        ("a.b", "a_2Eb"),
        ("a_2Eb", "a_5F2Eb"),
        ("a b", "a_20b"),
        ("é", "_C3_A9"),
        ("`", "_60"),
        ("'", "_27"),
    ],
)
def test_plain_keys_stay_readable(key: str, encoded: str) -> None:
    assert layout.encode_key(key) == encoded


@settings(max_examples=300)
@given(st.one_of(keys(), ANY_TEXT), st.sampled_from(KINDS))
def test_metadata_column_parses_back_to_key_and_kind(key: str, kind: str) -> None:
    column = layout.metadata_column(key, kind)
    assert "." not in column and "`" not in column
    assert layout.parse_metadata_column(column) == (key, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", ["k", "", "a.b", "ms_k", "mia_x", "_2E", "中文", "😀"])
def test_every_kind_round_trips(key: str, kind: str) -> None:
    assert layout.parse_metadata_column(layout.metadata_column(key, kind)) == (key, kind)


@pytest.mark.parametrize(
    "name",
    [
        layout.ID,
        layout.EMBEDDING,
        layout.DOCUMENT,
        layout.URI,
        layout.DISTANCE,
        "mx_k",
        "ms",
        "ms-k",
        "ms_k.v",
        "msb_k",
        "m_k",
    ],
)
def test_other_columns_are_not_metadata(name: str) -> None:
    assert layout.parse_metadata_column(name) is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("x", "s"),
        (1, "i"),
        (1.0, "f"),
        (True, "b"),
        (False, "b"),
        (["x"], "sa"),
        ([1], "ia"),
        ([2.0], "fa"),
        ([True], "ba"),
    ],
)
def test_value_kind_keeps_bool_apart_from_int(value: object, kind: str) -> None:
    assert columns.value_kind(value) == kind  # type: ignore[arg-type]
