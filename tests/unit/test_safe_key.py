"""Overlay folder keys (issue 9, findings 7 and 8): distinct ids, distinct folders, always."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lime_spark.storage import safe_key


def test_the_empty_id_has_a_key_no_other_id_encodes_to():
    assert safe_key("") != safe_key("\x00empty")
    assert len({safe_key(i) for i in ["", "\x00empty", "%empty", "empty", "%00empty"]}) == 5


def test_ids_differing_only_in_case_get_folders_distinct_on_case_insensitive_stores():
    ids = ["cat", "Cat", "CAT", "cAt", "x" * 140 + "A", "x" * 140 + "a", "ü", "Ü"]
    keys = [safe_key(i) for i in ids]
    assert len({k.lower() for k in keys}) == len(ids)
    assert safe_key("cat") == "cat"                      # lowercase ids keep readable keys
    assert all(len(k) <= 150 for k in keys)


def test_a_lone_surrogate_is_encoded_not_raised():
    key = safe_key("a\ud800b")
    assert key == "a%ED%A0%80b" and key != safe_key("a\ud801b")


@given(st.lists(st.text(max_size=40), unique=True, max_size=30))
def test_distinct_ids_never_share_a_folder_even_ignoring_case(ids):
    keys = [safe_key(i) for i in ids]
    assert len({k.lower() for k in keys}) == len(ids)
