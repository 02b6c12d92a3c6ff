"""tpsynth.columns.Table: rows stored by columns."""

import math

import pytest

from tpsynth.columns import Table


def test_rows_round_trip_and_are_fresh():
    rows = [{"a": 1, "b": "x"}, {"a": None, "b": "y"}]
    t = Table.from_rows(rows)
    assert t.rows() == rows
    assert t.names == ["a", "b"] and len(t) == 2 and "a" in t and "c" not in t
    got = t.rows()
    got[0]["a"] = 99  # a row is a copy: the table is unchanged
    assert t["a"] == [1, None] and t.row(0) == {"a": 1, "b": "x"}


def test_from_rows_fills_missing_keys_and_names_order():
    t = Table.from_rows([{"a": 1}, {"b": 2}], names=["b", "a"])
    assert t.columns == {"b": [None, 2], "a": [1, None]}


def test_take_where_get_floats():
    t = Table({"a": [1, 2, 3], "b": [True, None, 2.5]})
    assert t.take([2, 0]).rows() == [{"a": 3, "b": 2.5}, {"a": 1, "b": True}]
    assert t.where([False, True, False]).rows() == [{"a": 2, "b": None}]
    assert t.get("zz", 0) == [0, 0, 0]
    f = t.floats("b")
    assert f[0] == 1.0 and math.isnan(f[1]) and f[2] == 2.5


def test_lengths_checked_and_empty_tables():
    with pytest.raises(ValueError, match="differ in length"):
        Table({"a": [1], "b": [1, 2]})
    with pytest.raises(ValueError, match="differ in length from 3"):
        Table({"a": [1]}, 3)
    empty = Table({}, 2)
    assert len(empty) == 2 and empty.rows() == [{}, {}] and empty.take([1]).rows() == [{}]
    assert not Table.from_rows([]) and Table.from_rows([]).rows() == []


def test_equality():
    assert Table({"a": [1]}) == Table.from_rows([{"a": 1}])
    assert Table({"a": [1]}) != Table({"a": [2]})


def test_a_tuple_column_is_kept_read_only_and_equal_to_its_list():
    shared = (None,) * 3
    t = Table({"a": [1, 2, 3], "b": shared, "c": shared})
    assert t["b"] is shared and t == Table({"a": [1, 2, 3], "b": [None] * 3, "c": [None] * 3})
    assert t.take([2, 0]).columns == {"a": [3, 1], "b": [None, None], "c": [None, None]}
    assert t.rows()[1] == {"a": 2, "b": None, "c": None}
    with pytest.raises(TypeError):
        t["b"][0] = 1  # cannot change every absent column at once by mistake
